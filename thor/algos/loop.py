"""`thor train` as a Python function: rollouts, rewards, batch, update, repeat; resumable.

Example:
    >>> from thor.algos.loop import TrainConfig, train  # doctest: +SKIP
    >>> train(TrainConfig(model="runs/sft/model", steps=20,
    ...                   algorithm={"name": "thor", "group_size": 4}))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from thor.agents.config import RolloutConfig
from thor.agents.rollout import RolloutEngine
from thor.algos.base import Algorithm, CollectContext
from thor.algos.batch import KINDS, Batch, TrainSample, collate
from thor.algos.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from thor.algos.logprobs import token_logprobs
from thor.algos.metrics import MetricsLog
from thor.algos.problems import ProblemStream
from thor.config import ThorConfig
from thor.data.loaders import load_problems
from thor.errors import ConfigError
from thor.registries import AlgorithmSpec, PolicySpec
from thor.types import Problem

__all__ = ["LoraSettings", "OptimConfig", "TrainConfig", "Trainer", "load_causal_lm", "train"]

log = logging.getLogger(__name__)

KIND_LOG_NAMES = {"trajectory": "traj", "step": "step"}
"""Metric-name prefixes of the sample kinds (``traj_policy_loss``, ``step_policy_loss``)."""


class OptimConfig(ThorConfig):
    """AdamW and how a step's batch is split (THOR: lr 1e-6, grad clip 1.0)."""

    lr: float = Field(1e-6, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = Field(1.0, gt=0.0)
    mini_batches: int = Field(
        1, ge=1, description="Optimizer steps per collected batch (1 = on-policy)"
    )
    micro_batch_size: int = Field(
        4, ge=1, description="Rows per forward/backward (gradient accumulation)"
    )


class LoraSettings(ThorConfig):
    """LoRA through peft (only the adapters train)."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )


class TrainConfig(ThorConfig):
    """One RL run: model, algorithm, data, rollouts, optimisation, output."""

    model: str = Field(
        "embedded", description="'embedded', an HF model directory (e.g. an SFT export)"
    )
    algorithm: AlgorithmSpec = Field(
        default_factory=lambda: AlgorithmSpec.model_validate("thor"),
        description="A registered algorithm with its config: thor, grpo, drgrpo, rloo...",
    )
    generation: PolicySpec | None = Field(
        None,
        description="The policy that generates rollouts, kept in sync with the trained weights; "
        "None: the trained module itself (transformers, in process)",
    )
    dataset: str = Field("synthetic_train", description="A registered dataset or a JSONL file")
    dataset_limit: int | None = Field(None, ge=1)
    steps: int = Field(20, ge=1)
    seed: int = 0
    rollout: RolloutConfig = Field(
        default_factory=lambda: RolloutConfig.model_validate(TRAIN_ROLLOUT),
        description="The agent, env and batching of training rollouts (training defaults: "
        "temperature 1.0, THOR's trajectory reward, 1,024-token responses)",
    )
    optim: OptimConfig = Field(default_factory=OptimConfig)
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16 autocast over fp32 master weights; auto = bf16 where it is native"
    )
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None
    max_length: int | None = Field(
        None, ge=1, description="Cut training sequences to this many tokens"
    )
    out_dir: Path = Path("runs/train")
    save_every: int = Field(5, ge=1)
    export: bool = Field(
        True, description="Write the final policy as an HF directory (out_dir/model)"
    )
    progress: bool = True

    @model_validator(mode="before")
    @classmethod
    def _training_rollout_defaults(cls, data: Any) -> Any:
        """A ``rollout`` given as a mapping keeps the training defaults it does not override."""
        if isinstance(data, dict) and isinstance(data.get("rollout"), dict):
            data = {**data, "rollout": training_rollout(data["rollout"])}
        return data


TRAIN_ROLLOUT: dict[str, Any] = {
    "agent": {"name": "tir", "temperature": 1.0},
    "env": {"reward": "thor", "max_response_tokens": 1024},
}
"""Training rollouts sample at temperature 1.0 with THOR's trajectory reward."""


def training_rollout(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` merged over :data:`TRAIN_ROLLOUT` (the env defaults apply to the default env)."""
    out = {**TRAIN_ROLLOUT, **overrides}
    agent = overrides.get("agent")
    if isinstance(agent, str):
        agent = {"name": agent}
    if isinstance(agent, dict):
        out["agent"] = {**TRAIN_ROLLOUT["agent"], **agent}
    env = overrides.get("env")
    if isinstance(env, dict) and "name" not in env:
        out["env"] = {**TRAIN_ROLLOUT["env"], **env}
    return out


def load_causal_lm(model: str) -> tuple[Any, Any]:
    """A trainable float32 causal LM and its tokenizer, loaded offline ('embedded', a directory)."""
    from transformers import AutoModelForCausalLM

    from thor.agents.backends.hf import load_hf_tokenizer, resolve_model_path

    directory, gguf = resolve_model_path(model)
    extra: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
    lm = AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, local_files_only=True, **extra
    )
    return lm, load_hf_tokenizer(model)


class Trainer:
    """Runs RL steps on one model with one algorithm; checkpoints and resumes exactly.

    Args:
        config: the run.
        model, tokenizer: train these instead of loading ``config.model``.
        algorithm: an algorithm object instead of ``config.algorithm`` by name.
        problems: training problems instead of ``config.dataset``.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: Any = None,
        tokenizer: Any = None,
        algorithm: Algorithm | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        from thor.agents.backends.hf import HFPolicy

        self.config = config
        torch.manual_seed(config.seed)
        if model is None:
            model, tokenizer = load_causal_lm(config.model)
        if config.lora is not None:
            model = _with_lora(model, config.lora)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = True  # generation still uses the KV cache
        self.model, self.tokenizer = model, tokenizer
        self.algorithm = algorithm or config.algorithm.build()
        self.rollout_config = config.rollout
        self.policy = (
            HFPolicy.from_model(model, tokenizer, name="train-policy")
            if config.generation is None
            else _generation_policy(config.generation)
        )
        self.engine = RolloutEngine(self.policy, self.rollout_config)
        params = [p for p in model.parameters() if p.requires_grad]
        o = config.optim
        self.optimizer = torch.optim.AdamW(
            params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay
        )
        self.ref_model = None
        if getattr(self.algorithm.loss, "uses_reference", False):
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.stream = ProblemStream(
            problems or load_problems(config.dataset, limit=config.dataset_limit), seed=config.seed
        )
        self.step = 0
        self.out_dir = Path(config.out_dir)
        console = None
        if config.progress:
            from rich.console import Console

            console = Console()
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl", console=console)
        self._resume()
        self.sync_weights()

    # -- the loop ---------------------------------------------------------------------------------
    def train(self) -> Path:
        """Run until ``config.steps``; returns the output directory."""
        try:
            while self.step < self.config.steps:
                self.train_step()
                if self.step % self.config.save_every == 0 or self.step == self.config.steps:
                    self.save()
            if self.config.export:
                self.export(self.out_dir / "model")
        finally:
            self.engine.close()
            if self.config.generation is not None:
                self.policy.close()
        return self.out_dir

    def train_step(self) -> dict[str, float]:
        """Collect one batch with the algorithm and update the policy once (or ``mini_batches`` times)."""
        before = self.engine.stats.as_dict()
        t0 = time.perf_counter()
        self.model.eval()
        ctx = CollectContext(self.engine, self.policy, self.stream, self.step, self.config.seed)
        with torch.no_grad(), self._autocast():
            collected = self.algorithm.collect(ctx)
        try:
            t_collect = time.perf_counter() - t0
            after = self.engine.stats.as_dict()
            metrics = dict(collected.metrics)
            t1 = time.perf_counter()
            if collected.samples:
                metrics.update(self.update(collected.samples))
                t_sync = time.perf_counter()
                self.sync_weights(version=self.step + 1)
                metrics["time_weight_sync"] = time.perf_counter() - t_sync
            else:
                log.info("step %d: no samples with signal; no update", self.step + 1)
        finally:
            collected.close()
        metrics.update(
            {
                "time_generate": after["generate_s"] - before["generate_s"],
                "time_execute": after["execute_s"] - before["execute_s"],
                "time_collect": t_collect,
                "time_update": time.perf_counter() - t1,
                "tokens_generated": after["tokens_generated"] - before["tokens_generated"],
            }
        )
        self.step += 1
        self.metrics.log(self.step, metrics)
        return metrics

    def update(self, samples: list[TrainSample]) -> dict[str, float]:
        """One policy update on ``samples`` (token-mean over model-written tokens)."""
        cfg = self.config
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = collate(samples, pad_token_id=int(pad), max_length=cfg.max_length)
        batch = batch.to(next(self.model.parameters()).device)
        temp = self._train_temperature()
        mb = cfg.optim.micro_batch_size
        with torch.no_grad(), self._autocast():
            self.model.eval()
            # On-policy (one optimizer step per batch) the old policy is the current one: its
            # log-probs are the training forward's own, detached (ratio 1), so the extra forward
            # pass is skipped, as TRL does. Several mini-batches need them computed up front.
            old = None
            if cfg.optim.mini_batches > 1:
                old = token_logprobs(
                    self.model, batch.input_ids, batch.attention_mask, temperature=temp, chunk=mb
                )
            ref = None
            if self.ref_model is not None:
                ref = token_logprobs(
                    self.ref_model,
                    batch.input_ids,
                    batch.attention_mask,
                    temperature=temp,
                    chunk=mb,
                )
        self.model.train()
        sums: dict[str, float] = {}
        n = batch.size
        parts = [list(range(n))[i :: cfg.optim.mini_batches] for i in range(cfg.optim.mini_batches)]
        for rows in parts:
            if rows:
                self._mini_batch(
                    batch.select(rows),
                    None if old is None else old[rows],
                    None if ref is None else ref[rows],
                    sums,
                )
        self.model.eval()
        out = {k: v / len(parts) for k, v in sums.items()}
        out["truncated_samples"] = float(batch.truncated_samples)
        out["train_tokens"] = float(batch.num_loss_tokens)
        return out

    def _mini_batch(
        self,
        mini: Batch,
        old: torch.Tensor | None,
        ref: torch.Tensor | None,
        sums: dict[str, float],
    ) -> None:
        """Gradient accumulation over micro-batches, one optimizer step, token-mean over ``mini``.

        ``old``: the old policy's log-probs; ``None`` means the current policy (on-policy).
        """
        loss_fn = self.algorithm.loss
        mb, temp = self.config.optim.micro_batch_size, self._train_temperature()
        den = max(1, mini.num_loss_tokens)
        weight = self.algorithm.sample_weights(mini)
        self.optimizer.zero_grad(set_to_none=True)
        for start in range(0, mini.size, mb):
            rows = list(range(start, min(start + mb, mini.size)))
            micro = mini.select(rows)
            with self._autocast():
                logp = token_logprobs(
                    self.model, micro.input_ids, micro.attention_mask, temperature=temp
                )
            r = None if ref is None else ref[rows]
            old_mb = logp.detach() if old is None else old[rows]
            out = loss_fn(
                logp, old_mb, micro.advantages, micro.loss_mask, r, weight[rows], denominator=den
            )
            out.loss.backward()
            share = micro.num_loss_tokens / den
            for k, v in out.metrics().items():
                sums[k] = sums.get(k, 0.0) + (v if k == "tokens" else v * share)
            for kind in KINDS:  # each kind's loss, logged apart
                sel = micro.kind_mask(kind)
                if sel.any():
                    with torch.no_grad():
                        o = loss_fn(
                            logp.detach()[sel],
                            old_mb[sel],
                            micro.advantages[sel],
                            micro.loss_mask[sel],
                        )
                    key = f"{KIND_LOG_NAMES.get(kind, kind)}_policy_loss"
                    sums[key] = (
                        sums.get(key, 0.0)
                        + float(o.policy_loss) * int(micro.loss_mask[sel].sum()) / den
                    )
        params = [p for p in self.model.parameters() if p.requires_grad]
        sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(
            torch.nn.utils.clip_grad_norm_(params, self.config.optim.grad_clip)
        )
        self.optimizer.step()

    def sync_weights(self, version: int | None = None) -> None:
        """Send the trained weights to the generation policy (a no-op for the module itself)."""
        self.policy.sync_weights(self.model, version=self.step if version is None else version)

    def _train_temperature(self) -> float:
        """The temperature the rollouts sampled at: the trained log-probs use the same."""
        return float(getattr(self.rollout_config.agent.config, "temperature", 1.0) or 1.0)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        from thor.hardware import bf16_is_fast

        device = next(self.model.parameters()).device.type
        use = self.config.precision == "bf16" or (
            self.config.precision == "auto" and bf16_is_fast(device)
        )
        if not use:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device, dtype=torch.bfloat16)

    # -- checkpoints --------------------------------------------------------------------------
    def save(self) -> Path:
        """Write a checkpoint of everything a resume needs (atomically)."""
        payload = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "stream": self.stream.state_dict(),
            "config": self.config.model_dump(mode="json"),
        }
        return save_checkpoint(self.out_dir / "checkpoints", self.step, payload)

    def _resume(self) -> None:
        path = latest_checkpoint(self.out_dir / "checkpoints")
        if path is None:
            self.metrics.truncate_after(0)
            return
        state = load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.stream.load_state_dict(state["stream"])
        self.step = int(state["step"])
        self.metrics.truncate_after(self.step)
        log.info("resumed from %s at step %d", path, self.step)

    def export(self, directory: Path) -> Path:
        """The policy as an HF model directory (LoRA adapters merged) that transformers and vLLM load."""
        model = self.model
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        directory.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        return directory


def _generation_policy(spec: PolicySpec) -> Any:
    """A registered policy that takes weight updates (``sync_weights``), built from its spec."""
    from thor.agents.backends.base import WeightSync

    policy = spec.build()
    if not isinstance(policy, WeightSync):
        raise ConfigError(
            f"generation: the {spec.name!r} policy cannot take weight updates (it has no "
            "sync_weights); use one that does (hf, vllm) or leave generation unset"
        )
    return policy


def _with_lora(model: Any, lora: LoraSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def train(config: TrainConfig, **kwargs: Any) -> Path:
    """Train (resuming from ``config.out_dir`` when it holds a checkpoint); returns the run directory."""
    return Trainer(config, **kwargs).train()
