"""The transformers backend: a local model directory, a GGUF file, or the embedded model; CPU or GPU.

Generation runs thor's own batched decode loop (:mod:`thor.agents.backends._decode`): left
padding, a KV cache, per-row stop checks, rows leaving the batch as they finish, and an early exit
when every row is done. A prefix cache (:mod:`thor.agents.backends._prefix`) keeps each finished
row's keys and values, so a prompt that continues an earlier call is prefilled only from where they
part. Loading is offline (``local_files_only``): thor never downloads weights.

Example:
    >>> from thor.agents.backends.hf import HFPolicy, HFPolicyConfig
    >>> from thor.types import SamplingParams
    >>> policy = HFPolicy(HFPolicyConfig(model="embedded"))  # doctest: +SKIP
    >>> prompt = policy.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])  # doctest: +SKIP
    >>> [c] = policy.generate([prompt], SamplingParams(max_tokens=16, temperature=0))  # doctest: +SKIP
    >>> c.text == policy.decode(c.token_ids)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from thor.agents.backends.base import HFTokenizerText, Prompt, check_prompts, make_completion
from thor.agents.backends.embedded import embedded_model_dir, is_embedded
from thor.config import ThorConfig
from thor.errors import PolicyError
from thor.types import Completion, FinishReason, SamplingParams

__all__ = ["HFPolicy", "HFPolicyConfig", "load_hf_tokenizer", "resolve_model_path"]


class HFPolicyConfig(ThorConfig):
    """How to load and run a transformers model.

    ``dtype="auto"`` is bfloat16 on GPUs with bf16 (float16 on others) and on CPUs with native bf16
    (AVX512-BF16 or AMX); float32 on other CPUs, where bf16 is emulated and measured 2-5x slower.
    """

    model: str = Field(
        "embedded", description="'embedded', a local HF model directory, or a .gguf file"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = Field(
        "auto", description="'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:1'..."
    )
    max_batch_size: int = Field(
        64, ge=1, description="Rows per decode batch; larger calls are split"
    )
    max_model_len: int | None = Field(
        None, ge=1, description="Context length (prompt + completion); default: the model's own"
    )
    name: str | None = Field(None, description="Display name; default: the model's")
    prefix_cache_mb: int = Field(
        4096,
        ge=0,
        description="Budget of the prefix cache (keys and values of earlier calls, reused when a "
        "prompt extends one: the next turn of a transcript); 0 turns it off",
    )
    engine: Literal["auto", "fast", "hf"] = Field(
        "auto",
        description="'fast': thor's lean forward for Llama-family models (same weights, KV cache "
        "grown in place, no repeated keys); 'hf': transformers' forward; 'auto': fast on a CPU "
        "for a float32 model it supports (in bfloat16 its logprobs drift further from a full "
        "forward's than transformers' do, so bfloat16 keeps transformers'; README has the figures)",
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="'int8': generate with int8 copies of the linear weights (CPU, fast engine; "
        "re-quantised whenever the float weights change; not exact: on SmolLM2-135M greedy "
        "outputs part from float32's within a few tokens, so it is not the default)",
    )


def resolve_model_path(model: str) -> tuple[Path, str | None]:
    """Where to load ``model`` from: ``(directory, gguf file name or None)``.

    Raises:
        PolicyError: nothing loadable there (thor does not download models).
    """
    if is_embedded(model):
        return embedded_model_dir(), None
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir() and (path / "config.json").is_file():
        return path, None
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return path, ggufs[0].name
    raise PolicyError(
        f"cannot load model {model!r}: not 'embedded', a Hugging Face model directory (with "
        "config.json) or a .gguf file. thor loads models offline; download it first "
        "(e.g. `huggingface-cli download NAME --local-dir DIR`) and pass the directory."
    )


def load_hf_tokenizer(model: str) -> Any:
    """The tokenizer of ``model`` ('embedded', a directory or a GGUF file), loaded offline."""
    from transformers import AutoTokenizer

    directory, gguf = resolve_model_path(model)
    try:
        if gguf:
            return AutoTokenizer.from_pretrained(directory, gguf_file=gguf, local_files_only=True)
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as err:
        raise PolicyError(f"cannot load the tokenizer of {model!r}: {err}") from err


def _torch_dtype(name: str, device: str) -> Any:
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    from thor.hardware import bf16_is_fast

    return torch.bfloat16 if bf16_is_fast("cpu") else torch.float32


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class HFPolicy(HFTokenizerText):
    """A :class:`~thor.agents.backends.base.Policy` over a transformers causal LM.

    Args:
        config: what to load (a config object or its fields as keyword arguments).

    Example:
        >>> from thor.testing import tiny_model, tiny_tokenizer
        >>> from thor.types import SamplingParams
        >>> policy = HFPolicy.from_model(tiny_model(), tiny_tokenizer())
        >>> [c] = policy.generate(["x = 1"], SamplingParams(max_tokens=5, temperature=0))
        >>> len(c.token_ids) <= 5 and c.text == policy.decode(c.token_ids)
        True
    """

    def __init__(self, config: HFPolicyConfig | None = None, /, **kwargs: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        cfg = config if config is not None else HFPolicyConfig(**kwargs)
        if config is not None and kwargs:
            raise TypeError("pass an HFPolicyConfig or keyword arguments, not both")
        device = _pick_device(cfg.device)
        directory, gguf = resolve_model_path(cfg.model)
        extra: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
        try:
            model = AutoModelForCausalLM.from_pretrained(
                directory, dtype=_torch_dtype(cfg.dtype, device), local_files_only=True, **extra
            )
        except (OSError, ValueError, RuntimeError) as err:
            raise PolicyError(f"cannot load model {cfg.model!r} from {directory}: {err}") from err
        if gguf and model.dtype != _torch_dtype(
            cfg.dtype, device
        ):  # GGUF loads dequantised float32
            model = model.to(_torch_dtype(cfg.dtype, device))
        # transformers types PreTrainedModel.to as taking the model itself
        model.to(torch.device(device)).eval()  # type: ignore[arg-type]
        tokenizer = load_hf_tokenizer(cfg.model)
        name = cfg.name or ("embedded" if is_embedded(cfg.model) else Path(cfg.model).name)
        self._setup(
            model,
            tokenizer,
            name=name,
            max_batch_size=cfg.max_batch_size,
            max_model_len=cfg.max_model_len,
            prefix_cache_mb=cfg.prefix_cache_mb,
            engine=cfg.engine,
            quantize=cfg.quantize,
        )
        self.config: HFPolicyConfig | None = cfg  # None when wrapping a model in memory

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        name: str | None = None,
        max_batch_size: int = 64,
        max_model_len: int | None = None,
        prefix_cache_mb: int = 0,
        engine: str = "auto",
        quantize: str = "none",
    ) -> HFPolicy:
        """Wrap a model already in memory (no copy), e.g. the very module a trainer is training.

        Generation switches the model to eval mode and restores its mode afterwards. The prefix
        cache is off unless ``prefix_cache_mb`` is given: it is emptied whenever the parameters
        change in place (PyTorch's version counters), but a trainer that writes weights behind
        autograd's back (``param.data[...] = ...``) or toggles adapters would leave it stale.
        ``engine`` and ``quantize`` are :class:`HFPolicyConfig`'s; int8 weights follow the same
        version counters, so an optimizer step reaches the next generation.
        """
        self = cls.__new__(cls)
        self._setup(
            model,
            tokenizer,
            name=name or _model_name(model),
            max_batch_size=max_batch_size,
            max_model_len=max_model_len,
            prefix_cache_mb=prefix_cache_mb,
            engine=engine,
            quantize=quantize,
        )
        self.config = None
        return self

    # -- training -------------------------------------------------------------------------------
    weights_version: int = 0

    def sync_weights(self, model: Any, *, version: int) -> None:
        """Generate with ``model``'s weights: nothing to move when it is this policy's own module
        (``from_model``), else its state dict is copied in. The prefix cache is emptied."""
        if model is not self.model:
            self.model.load_state_dict(_merged_state_dict(model))
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        self.refresh_weights()  # int8 rollout copies, if any, follow the new weights
        self.weights_version = version

    def _setup(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        max_batch_size: int,
        max_model_len: int | None,
        prefix_cache_mb: int,
        engine: str = "auto",
        quantize: str = "none",
    ) -> None:
        from thor.agents.backends._decode import DecodeModel
        from thor.agents.backends._prefix import PrefixCache

        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_size = max_batch_size
        self._fast = getattr(tokenizer, "backend_tokenizer", None)
        self.eos_token_ids = _eos_ids(model, tokenizer)
        pad = (
            tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else min(self.eos_token_ids, default=0)
        )
        ctx = max_model_len or getattr(model.config, "max_position_embeddings", None) or 4096
        self.prefix_cache = PrefixCache(prefix_cache_mb << 20) if prefix_cache_mb > 0 else None
        fast, self._int8 = _fast_engine(model, engine, quantize)
        self._dm: DecodeModel | None = DecodeModel(
            model,
            int(pad),
            self.eos_token_ids,
            self.decode,
            int(ctx),
            vocab_size=len(tokenizer),
            prefix=self.prefix_cache,
            fast=fast,
        )
        self._closed = False

    # -- generation ---------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams,
        *,
        row_seeds: Sequence[int] | None = None,
    ) -> list[Completion]:
        """One completion per prompt.

        Args:
            prompts: text or token ids.
            params: sampling parameters; row ``i`` is seeded with ``params.seed + i``.
            row_seeds: one seed per prompt instead (a server batching requests with their own seeds).
        """
        if self._closed or self._dm is None:
            raise PolicyError(f"{self.name}: generate() after close()")
        ids = [self.encode(p) if isinstance(p, str) else p for p in check_prompts(prompts)]
        if any(not p for p in ids):
            raise PolicyError(
                "an empty prompt: the model needs at least one token to continue from"
            )
        seeds = _row_seeds(len(ids), params.seed, row_seeds)
        results: list[tuple[list[int], list[float], str]] = []
        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        self.refresh_weights()  # the trained float weights reach generation
        try:
            from thor.agents.backends._decode import decode_batch

            for start in range(0, len(ids), self.max_batch_size):
                end = start + self.max_batch_size
                results += decode_batch(self._dm, ids[start:end], params, seeds[start:end])
        finally:
            if was_training:
                self.model.train()
        return [make_completion(k, self.decode, _reason(r), lp) for k, lp, r in results]

    def refresh_weights(self) -> int:
        """Bring generation up to date with the model's parameters now; returns modules re-quantised.

        Generation reads the float parameters themselves (nothing to copy); only int8 rollout
        weights (``quantize="int8"``) are copies, re-quantised here for the modules that changed
        (also done at the start of every :meth:`generate`). The prefix cache drops entries made
        with older weights.
        """
        if self._dm is not None and self.prefix_cache is not None:
            self.prefix_cache.check_weights(self.model)
        return self._int8.refresh() if self._int8 is not None else 0

    def close(self) -> None:
        """Drop this policy's references to the model (freed once nothing else holds it). Idempotent."""
        self._closed = True
        self.model = None
        self._dm = None
        self._int8 = None
        if self.prefix_cache is not None:
            self.prefix_cache.clear()

    def __repr__(self) -> str:
        return f"HFPolicy({self.name!r}{', closed' if self._closed else ''})"


def _fast_engine(model: Any, engine: str, quantize: str) -> tuple[Any, Any]:
    """The :class:`~thor.agents.backends._fastlm.FastLM` (or None) and int8 weights (or None) to use."""
    import torch

    from thor.agents.backends._fastlm import FastLM
    from thor.agents.backends._quant import Int8Linears, int8_available

    if engine not in ("auto", "fast", "hf") or quantize not in ("none", "int8"):
        raise PolicyError(f"unknown engine {engine!r} or quantize {quantize!r}")
    first = next(model.parameters())
    cpu = first.device.type == "cpu"
    exact = first.dtype == torch.float32  # where the fast forward was shown exact (see the config)
    supported = FastLM.supports(model)
    if engine == "fast" and not supported:
        raise PolicyError(f"engine='fast' does not support {type(model).__name__}; use 'hf'")
    if engine == "hf" or not supported or (engine == "auto" and not (cpu and exact)):
        if quantize == "int8":
            raise PolicyError("quantize='int8' needs the fast engine on a CPU")
        return None, None
    if quantize == "int8" and not (cpu and int8_available()):
        raise PolicyError("quantize='int8' needs a CPU and PyTorch's quantised linear kernels")
    int8 = Int8Linears(model) if quantize == "int8" else None
    return FastLM(model, int8), int8


def _reason(r: str) -> FinishReason:
    return r  # type: ignore[return-value]  # produced by StopChecker, always a FinishReason


def _row_seeds(n: int, seed: int | None, row_seeds: Sequence[int] | None) -> list[int]:
    if row_seeds is not None:
        if len(row_seeds) != n:
            raise ValueError(f"{len(row_seeds)} row seeds for {n} prompts")
        return [int(s) for s in row_seeds]
    base = secrets.randbits(62) if seed is None else int(seed)
    return [base + i for i in range(n)]


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for source in (getattr(gen, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(x) for x in source)
    return frozenset(ids)


def _model_name(model: Any) -> str:
    path = getattr(getattr(model, "config", None), "name_or_path", "") or ""
    return Path(path).name or type(model).__name__


def _merged_state_dict(model: Any) -> dict[str, Any]:
    """The state dict of ``model`` with LoRA adapters merged (plain modules: their own)."""
    if hasattr(model, "merge_and_unload"):
        import copy

        return dict(copy.deepcopy(model).merge_and_unload().state_dict())
    return dict(model.state_dict())
