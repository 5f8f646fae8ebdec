"""The policy protocol every backend implements, and the stop rules they all share.

A policy is batch-first: ``generate(prompts, params)`` returns one :class:`~thor.types.Completion`
per prompt (a group of G samples is the prompt repeated G times). A prompt is raw text, or token
ids when the caller needs an exact continuation (no re-tokenising).

Token ids are the record of truth: ``completion.text == policy.decode(completion.token_ids)``.
The stop rules are applied to the decoded text of the completion so far, token by token, by
:class:`StopChecker` (every backend uses it, so HF, vLLM, HTTP and scripted policies stop alike):

- ``eos``: the model sampled an end-of-sequence token (not included in ``token_ids``);
- ``code_close``: with ``params.stop_at_code_close``, right after the *closing* fence of a python
  block (:func:`thor.text.protocol.code_close_end`); the token that completes the fence is kept,
  with any characters it carries past the fence;
- ``stop``: the text contains one of ``params.stop`` (the completing token is kept);
- ``length``: ``params.max_tokens`` tokens were generated.

Logprobs, where a backend reports them, are those of each sampled token under the
temperature-scaled distribution before top-p / top-k truncation (``log_softmax(logits / T)``,
T = 0 counts as T = 1), which is what a trainer recomputes.

Example:
    >>> from thor.types import SamplingParams
    >>> decode = lambda ids: bytes(ids).decode("utf-8", "replace")
    >>> ids = list(b"Let me compute.\\n```python\\nprint(1)\\n```\\n```output\\n1")
    >>> kept, reason = apply_stops(ids, decode, SamplingParams(stop_at_code_close=True))
    >>> decode(kept), reason
    ('Let me compute.\\n```python\\nprint(1)\\n```', 'code_close')
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

from thor.errors import PolicyError
from thor.text.protocol import code_close_end
from thor.types import Completion, FinishReason, SamplingParams

__all__ = [
    "Decode",
    "HFTokenizerText",
    "IncrementalDecoder",
    "Policy",
    "Prompt",
    "StopChecker",
    "TickTokens",
    "WeightSync",
    "apply_stops",
    "check_prompts",
    "make_completion",
]

Prompt: TypeAlias = str | list[int]
"""Raw text, or token ids (an exact continuation: no re-tokenising)."""

Decode: TypeAlias = Callable[[Sequence[int]], str]


@runtime_checkable
class Policy(Protocol):
    """A language model that completes a batch of prompts (HF, vLLM, an HTTP server, a script)."""

    name: str
    eos_token_ids: frozenset[int]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """One completion per prompt, in order."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with no special tokens added."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens included, no clean-up: the inverse of :meth:`encode`."""
        ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The model's chat prompt for ``messages``, ending with the assistant's generation prompt."""
        ...

    def close(self) -> None:
        """Free the model, the engine or the connection pool (idempotent)."""
        ...


@runtime_checkable
class WeightSync(Protocol):
    """A policy a trainer can keep in sync with the weights it trains (HF in process, vLLM...).

    ``sync_weights`` is called once before training and after every update, with the trained
    module and the policy version (the number of updates so far); afterwards the policy must
    generate with those weights. ``weights_version`` says which version it generates with.
    """

    weights_version: int

    def sync_weights(self, model: Any, *, version: int) -> None:
        """Generate with ``model``'s current weights from now on (``version`` labels them)."""
        ...


def check_prompts(prompts: Sequence[Prompt]) -> list[Prompt]:
    """Validate a batch of prompts: each is a string or a non-empty list of non-negative ints.

    Raises:
        TypeError: a prompt of another type (a message list belongs in ``apply_chat_template``).
        ValueError: an empty token-id prompt or a negative id.
    """
    if isinstance(prompts, str | bytes):
        raise TypeError("generate() takes a sequence of prompts; wrap a single prompt in a list")
    out: list[Prompt] = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, Sequence) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in p
        ):
            ids = [int(t) for t in p]
            if not ids:
                raise ValueError(f"prompt {i} is an empty list of token ids")
            if min(ids) < 0:
                raise ValueError(f"prompt {i} has a negative token id")
            out.append(ids)
        else:
            raise TypeError(
                f"prompt {i} must be a str or a list of token ids, got {type(p).__name__}"
                " (render chat messages with apply_chat_template first)"
            )
    return out


class IncrementalDecoder:
    """The text of a growing token sequence, computed a few tokens at a time.

    Decodes only a short window around the newest token (the offsets scheme vLLM uses), and holds
    text back while the window ends in an incomplete UTF-8 character (U+FFFD).
    """

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self.ids: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0

    def push(self, token: int) -> str:
        """Append ``token``; return the text it completes (may be empty)."""
        self.ids.append(token)
        return self.flush()

    def append(self, token: int) -> None:
        """Append ``token`` without decoding (a later :meth:`push` or :meth:`flush` catches up)."""
        self.ids.append(token)

    @property
    def pending(self) -> bool:
        """Whether some appended tokens are not in :attr:`text` yet."""
        return self._read < len(self.ids)

    def flush(self) -> str:
        """Decode the tokens appended since the last decode; return the text they complete."""
        if self._read == len(self.ids):
            return ""
        prefix_text = (
            self._decode(self.ids[self._prefix : self._read]) if self._read > self._prefix else ""
        )
        new_text = self._decode(self.ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text) :]
            self._prefix, self._read = self._read, len(self.ids)
            self.text += delta
            return delta
        return ""


class TickTokens:
    """The token ids whose text may hold a backtick: a :class:`StopChecker` decodes only at them.

    Built once per tokenizer by decoding every id of the vocabulary alone; an id past the
    vocabulary (a model whose embedding matrix is padded) counts as one, to be safe.
    """

    def __init__(self, decode: Decode, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self.ids = frozenset(i for i in range(vocab_size) if "`" in decode([i]))

    def __contains__(self, token: object) -> bool:
        return isinstance(token, int) and (token >= self.vocab_size or token in self.ids)


class StopChecker:
    """Apply the stop rules of ``params`` to one completion, one sampled token at a time.

    Args:
        decode: the policy's ``decode``.
        params: the sampling parameters (``max_tokens``, ``stop``, ``stop_at_code_close``).
        eos_token_ids: tokens that end the completion (never kept).
        max_tokens: overrides ``params.max_tokens`` (a backend clamps it to the context left).
        tick_tokens: the token ids whose text may hold a backtick (a :class:`TickTokens`).
            Given, and without stop strings, the text is decoded only when one of them arrives:
            only a backtick can close a code block, and decoding every token is most of the
            per-token cost of a fast decode loop.

    Attributes:
        ids: the kept token ids so far.
        finish_reason: set once the completion is finished.
    """

    def __init__(
        self,
        decode: Decode,
        params: SamplingParams,
        eos_token_ids: Collection[int] = (),
        *,
        max_tokens: int | None = None,
        tick_tokens: Container[int] | None = None,
    ) -> None:
        self._dec = IncrementalDecoder(decode)
        self._eos = frozenset(eos_token_ids)
        self._stops = [s for s in params.stop if s]
        self._longest = max((len(s) for s in self._stops), default=0)
        self._code = params.stop_at_code_close
        self._lazy = tick_tokens if not self._stops else None
        self._tick_pending = False
        self.max_tokens = params.max_tokens if max_tokens is None else max_tokens
        self.finish_reason: FinishReason | None = "length" if self.max_tokens <= 0 else None

    @property
    def ids(self) -> list[int]:
        return self._dec.ids

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def push(self, token: int) -> FinishReason | None:
        """Feed the next sampled token; return the finish reason once the completion is finished.

        Raises:
            RuntimeError: the completion was already finished.
        """
        if self.finish_reason is not None:
            raise RuntimeError("push() after the completion finished")
        if token in self._eos:
            self.finish_reason = "eos"
            return self.finish_reason
        if self._lazy is not None:
            self._dec.append(token)
            self._tick_pending |= self._code and token in self._lazy
            if self._tick_pending:
                self._dec.flush()
                # text held back (an incomplete UTF-8 character) is checked once it is released
                self._tick_pending = self._dec.pending
                if code_close_end(self._dec.text) is not None:
                    self.finish_reason = "code_close"
            if self.finish_reason is None and len(self._dec.ids) >= self.max_tokens:
                self.finish_reason = "length"
            return self.finish_reason
        before = len(self._dec.text)
        delta = self._dec.push(token)
        if delta:
            text = self._dec.text
            # a closing fence ends with a backtick: only then can a block have closed
            if self._code and "`" in delta and code_close_end(text) is not None:
                self.finish_reason = "code_close"
            if self.finish_reason is None and self._stops:
                window = text[max(0, before - self._longest + 1) :]
                if any(s in window for s in self._stops):
                    self.finish_reason = "stop"
        if self.finish_reason is None and len(self._dec.ids) >= self.max_tokens:
            self.finish_reason = "length"
        return self.finish_reason


def apply_stops(
    ids: Sequence[int],
    decode: Decode,
    params: SamplingParams,
    eos_token_ids: Collection[int] = (),
    *,
    max_tokens: int | None = None,
) -> tuple[list[int], FinishReason | None]:
    """Cut a finished token sequence where the stop rules say (for engines that stop on strings only).

    Returns:
        The kept ids and the finish reason, or ``None`` when no rule fired (the sequence ended for a
        reason the caller knows, e.g. the server's own ``length``).
    """
    checker = StopChecker(decode, params, eos_token_ids, max_tokens=max_tokens)
    if checker.done:
        return [], checker.finish_reason
    for tok in ids:
        if checker.push(int(tok)) is not None:
            break
    return list(checker.ids), checker.finish_reason


def make_completion(
    ids: Sequence[int],
    decode: Decode,
    reason: FinishReason,
    logprobs: Sequence[float] | None = None,
) -> Completion:
    """A :class:`~thor.types.Completion` whose text is ``decode(ids)`` (logprobs cut to match)."""
    lp = None if logprobs is None else [float(x) for x in logprobs[: len(ids)]]
    if lp is not None and len(lp) != len(ids):
        raise ValueError(f"{len(ids)} tokens but {len(lp)} logprobs")
    return Completion(
        text=decode(list(ids)), token_ids=list(ids), logprobs=lp, finish_reason=reason
    )


class HFTokenizerText:
    """``encode`` / ``decode`` / ``apply_chat_template`` over a Hugging Face tokenizer.

    Shared by the backends that hold one (``self.tokenizer``, its Rust ``self._fast`` or ``None``,
    and ``self.name``): ids are never given special tokens on encode, and decode keeps every
    character (no special-token skipping, no clean-up of spaces), so ``decode(encode(t)) == t``.
    """

    tokenizer: Any
    _fast: Any
    name: str

    def encode(self, text: str) -> list[int]:
        if self._fast is not None:
            return list(self._fast.encode(text, add_special_tokens=False).ids)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self._fast is not None:
            return str(self._fast.decode(ids, skip_special_tokens=False))
        return str(
            self.tokenizer.decode(
                ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
            )
        )

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise PolicyError(
                f"{self.name}: the tokenizer has no chat template; build the prompt text yourself"
            )
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
