"""A policy that replays scripted responses, for fast unit tests of agents and loops.

:class:`ScriptedPolicy` behaves like a real backend in everything but the choice of text: each
scripted response is tokenised with a real tokenizer and "generated" token by token through the
same stop rules the real backends use (:class:`~thor.agents.backends.base.StopChecker`), so
``stop_at_code_close``, ``stop`` strings and ``max_tokens`` cut it exactly where HF or vLLM would,
``text == decode(token_ids)``, and a response that is not cut ends with ``finish_reason="eos"``.
Logprobs are fake but deterministic. It never replaces a test of a real backend.

Example:
    >>> from thor.testing.scripted import ScriptedPolicy
    >>> from thor.types import SamplingParams
    >>> policy = ScriptedPolicy(["Let me check.\\n```python\\nprint(6 * 7)\\n```\\nSo \\\\boxed{42}."])
    >>> [c] = policy.generate(["What is 6*7?"], SamplingParams(stop_at_code_close=True))
    >>> c.text, c.finish_reason
    ('Let me check.\\n```python\\nprint(6 * 7)\\n```', 'code_close')
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from thor.agents.backends.base import Prompt, StopChecker, check_prompts, make_completion
from thor.errors import PolicyError
from thor.types import Completion, SamplingParams

__all__ = ["ByteTokenizer", "ScriptedPolicy", "check_policy"]

Script = Sequence[str] | Callable[[str], str]


class ByteTokenizer:
    """A tokenizer whose tokens are the UTF-8 bytes of the text (ids 0-255) plus two special tokens.

    ``eos`` is 256 and renders as ``<|endoftext|>``; ``pad`` is 257. Decoding replaces invalid
    UTF-8 with U+FFFD, like byte-level BPE tokenizers do.

    Example:
        >>> tok = ByteTokenizer()
        >>> tok.encode("é"), tok.decode(tok.encode("é"))
        ([195, 169], 'é')
    """

    eos_token_id = 256
    pad_token_id = 257
    _special: ClassVar[dict[int, str]] = {256: "<|endoftext|>", 257: "<|pad|>"}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode("utf-8", "surrogatepass"))

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        out: list[str] = []
        buf = bytearray()
        for i in ids:
            if i < 256:
                buf.append(i)
                continue
            out.append(buf.decode("utf-8", "replace"))
            buf.clear()
            if not skip_special_tokens:
                out.append(self._special.get(i, ""))
        out.append(buf.decode("utf-8", "replace"))
        return "".join(out)

    def __len__(self) -> int:
        return 258


def _default_tokenizer() -> Any:
    try:
        from thor.testing.tiny import tiny_tokenizer
    except ImportError:  # a trimmed install without the tiny tokenizer
        return ByteTokenizer()
    return tiny_tokenizer()


def _fake_logprob(token: int, position: int) -> float:
    """A deterministic, negative number that varies with the token and its position."""
    return -0.05 - ((token * 31 + position * 17) % 97) / 100.0


class ScriptedPolicy:
    """A :class:`~thor.agents.backends.base.Policy` that replays scripted responses.

    Args:
        responses: a list (each prompt, across calls, consumes the next response) or a function
            of the prompt text returning the response.
        tokenizer: anything with ``encode(text, add_special_tokens=False)``, ``decode(ids)`` and
            ``eos_token_id``; default: thor's tiny BPE tokenizer (:func:`thor.testing.tiny_tokenizer`),
            or :class:`ByteTokenizer` where that is not available.
        name: the policy's name.

    Raises:
        PolicyError: from ``generate`` when a list of responses runs out.

    Example:
        >>> policy = ScriptedPolicy(lambda prompt: "echo: " + prompt[-3:])
        >>> policy.generate(["abcdef"], SamplingParams(max_tokens=50))[0].text
        'echo: def'
    """

    def __init__(self, responses: Script, *, tokenizer: Any = None, name: str = "scripted") -> None:
        if isinstance(responses, str):
            raise TypeError("responses must be a list of strings or a function, not one string")
        self._script: Script = responses if callable(responses) else list(responses)
        self._next = 0
        self._lock = threading.Lock()
        self.tokenizer = tokenizer if tokenizer is not None else _default_tokenizer()
        self.name = name
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("the tokenizer needs an eos_token_id")
        self.eos_token_ids = frozenset({int(eos)})
        self.calls: list[list[Prompt]] = []
        """Every batch of prompts received, in order (for assertions in tests)."""

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False))

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
            )
        body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return body + "<|im_start|>assistant\n"

    def _response(self, prompt_text: str) -> str:
        if callable(self._script):
            out = self._script(prompt_text)
            if not isinstance(out, str):
                raise PolicyError(f"the scripted function returned {type(out).__name__}, not str")
            return out
        with self._lock:
            if self._next >= len(self._script):
                raise PolicyError(
                    f"ScriptedPolicy ran out of responses (it had {len(self._script)})"
                )
            out = self._script[self._next]
            self._next += 1
        return out

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        checked = check_prompts(prompts)
        self.calls.append(checked)
        out: list[Completion] = []
        for p in checked:
            text = p if isinstance(p, str) else self.decode(p)
            ids = [*self.encode(self._response(text)), min(self.eos_token_ids)]
            checker = StopChecker(self.decode, params, self.eos_token_ids)
            for tok in ids:
                if checker.done or checker.push(tok) is not None:
                    break
            kept = checker.ids
            lps = [_fake_logprob(t, i) for i, t in enumerate(kept)]
            out.append(make_completion(kept, self.decode, checker.finish_reason or "eos", lps))
        return out

    @property
    def remaining(self) -> int | None:
        """Responses left in a scripted list (``None`` for a function)."""
        return None if callable(self._script) else len(self._script) - self._next

    def close(self) -> None:
        """Nothing to free."""


def check_policy(policy: Any, *, max_tokens: int = 8) -> None:
    """Check that ``policy`` keeps the :class:`~thor.agents.backends.base.Policy` contract.

    Checks: encode/decode round-trip; one completion per prompt, in order; ``text ==
    decode(token_ids)``; at most ``max_tokens`` tokens; no EOS token kept; one logprob per token,
    each <= 0; a text prompt and its token ids give the same greedy completion; the same seed gives
    the same samples; a chat prompt is a string. Meant for tests of backends (thor's and plugins').

    Raises:
        AssertionError: naming the broken rule.

    Example:
        >>> check_policy(ScriptedPolicy(lambda prompt: "The answer is 4."))
    """
    sample = "Compute 2 + 2.\n```python\nprint(2 + 2)\n```"
    ids = policy.encode(sample)
    assert all(isinstance(i, int) for i in ids), "encode() must return ints"
    assert policy.decode(ids) == sample, "decode(encode(text)) must give the text back"
    chat = policy.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}])
    assert isinstance(chat, str) and "What is 2 + 2?" in chat, (
        "apply_chat_template() must render the messages"
    )
    greedy = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    prompts: list[Prompt] = [chat, policy.encode(chat), "x = 1"]
    out = policy.generate(prompts, greedy)
    assert isinstance(out, list) and len(out) == len(prompts), "one completion per prompt"
    for c in out:
        _check_completion(policy, c, max_tokens)
    assert out[0].token_ids == out[1].token_ids, (
        "a text prompt and its token ids must continue alike"
    )
    sampled = SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=1234)
    a = policy.generate([chat, chat], sampled)
    b = policy.generate([chat, chat], sampled)
    assert [c.token_ids for c in a] == [c.token_ids for c in b], (
        "the same seed must give the same tokens"
    )
    for c in a:
        _check_completion(policy, c, max_tokens)


def _check_completion(policy: Any, c: Completion, max_tokens: int) -> None:
    assert isinstance(c, Completion), (
        f"generate() must return Completion objects, got {type(c).__name__}"
    )
    assert c.text == policy.decode(c.token_ids), "Completion.text must equal decode(token_ids)"
    assert len(c.token_ids) <= max_tokens, f"{len(c.token_ids)} tokens > max_tokens={max_tokens}"
    assert not set(c.token_ids) & set(policy.eos_token_ids), "an EOS token must not be kept"
    if c.finish_reason == "length":
        assert len(c.token_ids) == max_tokens, (
            "finish_reason 'length' with fewer than max_tokens tokens"
        )
    if c.logprobs is not None:
        assert len(c.logprobs) == len(c.token_ids), "one logprob per token"
        assert all(lp <= 1e-4 for lp in c.logprobs), "logprobs must be <= 0"
