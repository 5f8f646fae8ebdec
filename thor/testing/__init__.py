"""Test helpers shipped with thor: a tiny local tokenizer and model (and, from their issue, fakes).

Example:
    >>> from thor.testing import tiny_tokenizer
    >>> tiny_tokenizer().eos_token
    '<|endoftext|>'
"""

from __future__ import annotations

from thor.testing.scripted import ByteTokenizer, ScriptedPolicy, check_policy
from thor.testing.tiny import tiny_model, tiny_tokenizer

__all__ = ["ByteTokenizer", "ScriptedPolicy", "check_policy", "tiny_model", "tiny_tokenizer"]
