r"""SFT cold start on TIRGen output: loss on model-written tokens only (THOR-SPEC section 1).

Each TIRGen row (:mod:`thor.data.tirgen.output`) is a conversational prompt, one assistant
completion and ``model_spans``, the character spans of model-written text in the completion; the
``output`` blocks between them are tool outputs. :func:`tokenize_row` turns a row into
``input_ids`` and ``assistant_masks`` (1 = trained on): the prompt goes through the chat template
and is masked, model-written text is trained on, tool outputs are masked, and the tokenizer's EOS
(the token a policy stops on) closes the completion and is trained on. TRL's ``SFTTrainer`` takes
that already-tokenized dataset as it is (it builds ``labels`` with -100 where the mask is 0, cuts
to ``max_length`` and pads); thor adds only the tokenization and the export.

Two ways to tokenize the completion (:attr:`SFTConfig.mask_mode`):

- ``"segments"`` (default): each maximal run of model text, and each tool output, is encoded on its
  own and the ids are concatenated, the way the rollout engine builds an episode (the model's turn
  ends at the closing fence, the observation is encoded by itself). No token straddles a boundary,
  so the mask is exact and SFT sees the token boundaries RL and inference see.
- ``"offsets"``: the whole completion is encoded at once and a token is trained on when any of its
  characters is model-written (offset mapping of a fast tokenizer,
  :func:`thor.data.tirgen.output.token_loss_mask`).

Example:
    >>> from thor.testing import tiny_tokenizer
    >>> row = {"prompt": [{"role": "user", "content": "6*7?"}],
    ...        "completion": [{"role": "assistant", "content": "A\n```output\n42\n```\nB"}],
    ...        "model_spans": [[0, 2], [19, 20]]}
    >>> tok = tiny_tokenizer()
    >>> ex = tokenize_row(tok, row)
    >>> tok.decode([t for t, m in zip(ex["input_ids"], ex["assistant_masks"]) if m])
    'A\nB<|endoftext|>'
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from thor.config import ThorConfig
from thor.errors import ConfigError

__all__ = [
    "SFTConfig",
    "load_rows",
    "masked_nll",
    "sft",
    "sft_trainer",
    "tokenize_row",
    "tokenize_rows",
]

log = logging.getLogger(__name__)


class SFTConfig(ThorConfig):
    """Cold-start SFT (THOR: 1 epoch, constant lr 2e-6, batch 256).

    Example:
        >>> SFTConfig(data="runs/tirgen/sft.jsonl").lr
        2e-06
    """

    data: Path = Field(
        description="A TIRGen JSONL file (rows with prompt, completion, model_spans)"
    )
    model: str = Field("embedded", description="'embedded' or an HF model directory")
    epochs: float = Field(1.0, gt=0.0)
    lr: float = Field(2e-6, gt=0.0, description="Constant learning rate (no warm-up, no decay)")
    batch_size: int = Field(8, ge=1, description="Rows per device step")
    grad_accum: int = Field(
        1, ge=1, description="Steps accumulated per optimizer step (THOR: 256 rows in all)"
    )
    max_length: int | None = Field(
        2048, ge=8, description="Cut sequences to this many tokens (prompt included)"
    )
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    bf16: bool | None = Field(
        None, description="bf16 autocast over fp32 master weights; None = where bf16 is native"
    )
    gradient_checkpointing: bool = False
    mask_mode: Literal["segments", "offsets"] = "segments"
    limit: int | None = Field(None, ge=1, description="Use the first N rows only")
    out_dir: Path = Path("runs/sft")
    seed: int = 0
    progress: bool = True


# -- data -----------------------------------------------------------------------------------------
def load_rows(path: str | Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a TIRGen JSONL file (``limit``: the first N).

    Raises:
        ConfigError: the file is missing, a line is not JSON, or a row lacks a field.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"SFT data not found: {p} (make it with `thor tirgen --out DIR`)")
    rows: list[dict[str, Any]] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{p}:{n}: not JSON: {err}") from None
        missing = {"prompt", "completion", "model_spans"} - set(row)
        if missing:
            raise ConfigError(f"{p}:{n}: a TIRGen row needs {sorted(missing)}")
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise ConfigError(f"{p}: no rows")
    return rows


def _completion_text(row: dict[str, Any]) -> str:
    comp = row["completion"]
    if isinstance(comp, str):
        return comp
    if len(comp) != 1 or comp[0].get("role") != "assistant":
        raise ValueError("a TIRGen completion is exactly one assistant message")
    return str(comp[0]["content"])


def _segments(text: str, spans: Iterable[Sequence[int]]) -> list[tuple[str, int]]:
    """``text`` cut into ``(piece, 1 if model-written else 0)``; spans are merged and checked."""
    merged: list[list[int]] = []
    for a, b in sorted((int(s[0]), int(s[1])) for s in spans):
        if not 0 <= a <= b <= len(text):
            raise ValueError(f"model span [{a}, {b}) is outside a completion of {len(text)} chars")
        if merged and a < merged[-1][1]:
            raise ValueError(f"model spans overlap at [{a}, {b})")
        if merged and a == merged[-1][1]:
            merged[-1][1] = b
        elif b > a:
            merged.append([a, b])
    out: list[tuple[str, int]] = []
    pos = 0
    for a, b in merged:
        if a > pos:
            out.append((text[pos:a], 0))
        out.append((text[a:b], 1))
        pos = b
    if pos < len(text):
        out.append((text[pos:], 0))
    return out


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_row(
    tokenizer: Any, row: dict[str, Any], *, mask_mode: str = "segments"
) -> dict[str, list[int]]:
    """``input_ids`` and ``assistant_masks`` (1 = trained on) of one TIRGen row.

    The prompt is rendered with the chat template (generation prompt included) and encoded
    without special tokens, as the rollout engine does; the tokenizer's EOS ends the completion.
    """
    prompt = tokenizer.apply_chat_template(
        row["prompt"], tokenize=False, add_generation_prompt=True
    )
    ids = _encode(tokenizer, str(prompt))
    mask = [0] * len(ids)
    text = _completion_text(row)
    if mask_mode == "segments":
        for piece, trained in _segments(text, row["model_spans"]):
            piece_ids = _encode(tokenizer, piece)
            ids += piece_ids
            mask += [trained] * len(piece_ids)
    elif mask_mode == "offsets":
        from thor.data.tirgen.output import token_loss_mask

        c_ids, c_mask = token_loss_mask(tokenizer, text, row["model_spans"])
        ids += c_ids
        mask += c_mask
    else:
        raise ValueError(f"unknown mask_mode {mask_mode!r}; use 'segments' or 'offsets'")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token: the model could not learn to stop")
    ids.append(int(tokenizer.eos_token_id))
    mask.append(1)
    return {"input_ids": ids, "assistant_masks": mask}


def tokenize_rows(
    tokenizer: Any, rows: Sequence[dict[str, Any]], *, mask_mode: str = "segments"
) -> list[dict[str, list[int]]]:
    """:func:`tokenize_row` over many rows."""
    return [tokenize_row(tokenizer, r, mask_mode=mask_mode) for r in rows]


def masked_nll(model: Any, examples: Sequence[dict[str, list[int]]], *, batch: int = 8) -> float:
    """Mean negative log-likelihood per trained token (``assistant_masks`` = 1) of ``examples``."""
    from thor.algos.logprobs import token_logprobs

    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(examples), batch):
            chunk = examples[start : start + batch]
            width = max(len(e["input_ids"]) for e in chunk)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            attn = torch.zeros_like(ids)
            mask = torch.zeros(len(chunk), width)
            for i, e in enumerate(chunk):
                n = len(e["input_ids"])
                ids[i, :n] = torch.tensor(e["input_ids"])
                attn[i, :n] = 1
                mask[i, :n] = torch.tensor(e["assistant_masks"], dtype=torch.float32)
            with torch.no_grad():
                logp = token_logprobs(model, ids, attn)
            # token_logprobs gives position t the log-prob of ids[:, t] (position 0 gets 0)
            total += float(-(logp * mask).sum())
            count += int(mask[:, 1:].sum())
    finally:
        model.train(was_training)
    return total / max(1, count)


# -- training -------------------------------------------------------------------------------------
def sft(
    config: SFTConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    rows: Sequence[dict[str, Any]] | None = None,
) -> Path:
    """Fine-tune on TIRGen rows with TRL's ``SFTTrainer``; returns the exported HF model directory.

    Args:
        config: the run.
        model, tokenizer: train these instead of loading ``config.model``.
        rows: TIRGen rows instead of reading ``config.data``.

    The export (``out_dir/model``) loads with ``transformers`` and with thor's
    :class:`~thor.agents.backends.hf.HFPolicy`; per-step losses go to ``out_dir/metrics.jsonl``
    (``thor plot`` draws them).
    """
    trainer = sft_trainer(config, model=model, tokenizer=tokenizer, rows=rows)
    trainer.train()
    export = Path(config.out_dir) / "model"
    trainer.save_model(str(export))
    trainer.processing_class.save_pretrained(str(export))
    log.info("SFT model written to %s", export)
    return export


def sft_trainer(
    config: SFTConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    rows: Sequence[dict[str, Any]] | None = None,
) -> Any:
    """The TRL ``SFTTrainer`` that :func:`sft` runs, built but not trained (to inspect or extend)."""
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    from thor.algos.loop import load_causal_lm

    torch.manual_seed(config.seed)
    if model is None:
        model, tokenizer = load_causal_lm(config.model)
    if tokenizer is None:
        raise ValueError("pass the tokenizer with the model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    data = rows if rows is not None else load_rows(config.data, limit=config.limit)
    examples = tokenize_rows(tokenizer, data, mask_mode=config.mask_mode)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _packed_sft_trainer(SFTTrainer)(
        model=model,
        args=TRLSFTConfig(**_trl_args(config, len(examples))),
        train_dataset=Dataset.from_list(examples),
        processing_class=tokenizer,
        callbacks=[_metrics_callback(out / "metrics.jsonl")],
    )


def _packed_sft_trainer(base: type) -> type:
    """TRL's ``SFTTrainer`` whose loss runs packed (no padding) where the model allows it.

    Llama-family models on a CPU (:func:`thor.algos.logprobs._packable`): the rows' real tokens
    go through one packed forward (:func:`thor.agents.backends._fastlm.packed_forward`) and the LM
    head runs only where a label is trained on. The loss is TRL's (summed NLL over the number of
    label tokens) and the logged entropy and token accuracy are computed as TRL does; other
    models, or calls that want the outputs, take TRL's own path.
    """

    class PackedSFTTrainer(base):
        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            from thor.algos.logprobs import _packable

            mask, labels = inputs.get("attention_mask"), inputs.get("labels")
            spans = None
            if not return_outputs and mask is not None and labels is not None:
                spans = _packable(model, mask)
            if spans is None or mask is None or labels is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, stats = _packed_loss(
                model, inputs["input_ids"], labels, spans, num_items_in_batch
            )
            mode = "train" if self.model.training else "eval"
            valid = max(1.0, stats["valid"])
            self._metrics[mode]["entropy"].append(stats["entropy"] / valid)
            self._metrics[mode]["mean_token_accuracy"].append(stats["correct"] / valid)
            if mode == "train":
                self._total_train_tokens += int(mask.sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

    return PackedSFTTrainer


def _packed_loss(
    model: Any,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    spans: Sequence[tuple[int, int]],
    num_items: Any,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Summed NLL of the labelled next tokens over ``num_items`` (or their count), and metrics."""
    from thor.agents.backends._fastlm import packed_forward

    seqs, keep, targets = [], [], []
    for b, (a, n) in enumerate(spans):
        nxt = labels[b, a + 1 : a + n]
        sel = (nxt != -100).nonzero().squeeze(-1)
        seqs.append(input_ids[b, a : a + n])
        keep.append(sel)
        targets.append(nxt[sel])
    logits = packed_forward(model, seqs, keep=keep).float()
    target = torch.cat(targets)
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).sum()
    count = int(target.numel()) if num_items is None else num_items
    loss = nll / torch.as_tensor(count, dtype=nll.dtype).clamp(min=1)
    with torch.no_grad():
        stats = {
            "valid": float(target.numel()),
            "entropy": float(-(logp.exp() * logp).sum()),
            "correct": float((logits.argmax(dim=-1) == target).sum()),
        }
    return loss, stats


def _trl_args(config: SFTConfig, n_rows: int) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    steps = math.ceil(n_rows * config.epochs / (config.batch_size * config.grad_accum))
    return {
        "output_dir": str(Path(config.out_dir) / "trl"),
        "num_train_epochs": config.epochs,
        "learning_rate": config.lr,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "max_length": config.max_length,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.grad_clip,
        "bf16": _use_bf16(config),
        # TRL turns checkpointing on by default; thor's field decides (``activation_checkpointing``
        # is the name transformers 5 gives ``gradient_checkpointing``)
        "activation_checkpointing": config.gradient_checkpointing,
        "seed": config.seed,
        "data_seed": config.seed,
        "logging_steps": 1 if steps < 200 else max(1, steps // 200),
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": not cuda,
        "disable_tqdm": not config.progress,
        "dataloader_num_workers": 0,
    }


def _metrics_callback(path: Path) -> Any:
    """A TRL/transformers callback that appends each logged row to ``path`` (thor's metrics file)."""
    from transformers import TrainerCallback

    from thor.algos.metrics import MetricsLog

    metrics = MetricsLog(path)
    metrics.truncate_after(0)

    class _ToJsonl(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if logs and "loss" in logs:
                row = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
                metrics.log(int(state.global_step), row)

    return _ToJsonl()


def _use_bf16(config: SFTConfig) -> bool:
    """bf16 when asked, or (by default) where the hardware runs it natively."""
    if config.bf16 is not None:
        return config.bf16
    import torch

    from thor.hardware import bf16_is_fast

    return bf16_is_fast("cuda" if torch.cuda.is_available() else "cpu")
