r"""TIRGen's output rows: conversational prompt/completion for TRL, model spans, provenance.

One row per kept sample, in the shape TRL's ``SFTTrainer`` takes as it is (conversational
prompt-completion)::

    {"prompt": [{"role": "system", "content": ...}, {"role": "user", "content": problem}],
     "completion": [{"role": "assistant", "content": tir_text}],
     "model_spans": [[start, end], ...],
     "provenance": {"problem_id": ..., "attempt": ..., "executions": [...], "actor": ...,
                    "critic": ..., "created": ..., ...}}

``model_spans`` are the character spans of model-written text in the completion's content (the
actor's text and the critic's code blocks); the ```` ```output ```` blocks between them are tool
outputs, which a trainer masks out of the loss (:func:`token_loss_mask` turns the spans into a
token mask for any fast tokenizer).

Example:
    >>> from thor.data.tirgen.text import Piece
    >>> pieces = [Piece(kind="text", text="We compute.\n"), Piece(kind="code", text="```python\nprint(6*7)\n```"),
    ...           Piece(kind="output", text="\n```output\n42\n```\n"), Piece(kind="text", text="So \\boxed{42}.")]
    >>> row = sft_row("6*7?", pieces, system="Solve it.", provenance={"problem_id": "p"})
    >>> text = row["completion"][0]["content"]
    >>> [text[a:b] for a, b in row["model_spans"]][1]
    'So \\boxed{42}.'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thor.data.tirgen.text import Piece, join_pieces, model_spans
from thor.text.prompts import PROMPTS

__all__ = ["sft_row", "sft_system_message", "token_loss_mask"]


def sft_system_message(setting: str | None) -> str | None:
    """The SFT prompt's system message: ``"tir"`` / ``"cot"`` (thor's prompts), a text, or ``None``."""
    if setting is None:
        return None
    return PROMPTS.get(setting, setting)


def sft_row(
    problem: str, pieces: Sequence[Piece], *, system: str | None, provenance: dict[str, Any]
) -> dict[str, Any]:
    """One training row (see the module docstring)."""
    prompt = [{"role": "system", "content": system}] if system else []
    prompt.append({"role": "user", "content": problem})
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": join_pieces(pieces)}],
        "model_spans": [list(s) for s in model_spans(pieces)],
        "provenance": provenance,
    }


def token_loss_mask(
    tokenizer: Any, text: str, spans: Sequence[Sequence[int]]
) -> tuple[list[int], list[int]]:
    """Token ids of ``text`` and a loss mask: 1 for tokens with a model-written character, 0 else.

    A token that straddles a span boundary (``"```\\n"`` at the end of a code block followed by the
    output's newline) is trained on: the model has to write it.

    Args:
        tokenizer: a fast tokenizer (it must report offsets).
        text: the completion's content.
        spans: its ``model_spans``.

    Example:
        >>> from thor.testing import tiny_tokenizer
        >>> ids, mask = token_loss_mask(tiny_tokenizer(), "ab\\n```output\\n1\\n```\\n", [(0, 3)])
        >>> mask[0], mask[-1]
        (1, 0)
    """
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    marks = bytearray(len(text) + 1)
    for a, b in spans:
        marks[a:b] = b"\x01" * (b - a)
    mask = [1 if any(marks[s:e]) else 0 for s, e in enc["offset_mapping"]]
    return ids, mask
