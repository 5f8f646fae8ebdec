"""Seconds per GRPO step: thor's Trainer vs TRL's GRPOTrainer, side by side in one process.

Both train the same initial weights on the same prompts (thor's chain-of-thought chat prompt for
the same problems), with the same group size, the same number of generated tokens per completion
(exactly ``--tokens``: TRL gets ``min_new_tokens``, thor's policy stops on no EOS), no tools, the
same reward with spread (the share of digits in the text), sampling at temperature 1, one
optimizer step per batch, no KL, asymmetric clipping 0.2 / 0.28, no gradient checkpointing, the
same precision and torch threads. Warm-up steps are excluded. thor's step is split into
generation, code execution (0 here: no tools) and update; TRL's generation time is measured
around its ``generate`` call.

Rows: the tiny random model (``thor.testing``) and SmolLM2-135M-Instruct (the embedded model).
The target of issue 7: thor no slower (ratio thor / TRL <= 1.0).

Timings on a shared 2-core machine are noisy: read them as sizes and re-run on a quiet machine.

Usage:
    .venv/bin/python benchmarks/train_step.py                 # both models
    .venv/bin/python benchmarks/train_step.py --models tiny --steps 5 --tokens 64
    .venv/bin/python benchmarks/train_step.py --precision bf16 --rounds 2
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict

import thor
from thor.text.prompts import messages_for
from thor.types import Episode, Problem


# -- the shared reward ----------------------------------------------------------------------------
def digit_share(text: str) -> float:
    return sum(c.isdigit() for c in text) / max(1, len(text))


class _NoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DigitShare:
    name = "bench_digit_share"

    def __init__(self, cfg: _NoConfig) -> None:
        pass

    def __call__(self, episode: Episode) -> float:
        return digit_share(episode.response_text())


if "bench_digit_share" not in thor.REWARDS:
    thor.REWARDS.register("bench_digit_share", config=_NoConfig, factory=DigitShare)


def trl_digit_share(completions: list[Any], **_: Any) -> list[float]:
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [digit_share(t) for t in texts]


# -- settings and results -------------------------------------------------------------------------
@dataclass
class Setup:
    name: str
    load: Callable[[], tuple[Any, Any]]
    prompts: int
    group: int
    tokens: int


@dataclass
class Timing:
    steps: list[float] = field(default_factory=list)
    generate: list[float] = field(default_factory=list)
    execute: list[float] = field(default_factory=list)
    update: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)

    def mean(self, name: str) -> float:
        values = getattr(self, name)
        return statistics.fmean(values) if values else float("nan")


def problems_for(n: int) -> list[Problem]:
    from thor.data.loaders import load_problems

    return [p.model_copy(update={"id": f"b{i}"}) for i, p in enumerate(load_problems("gsm8k")[:n])]


# -- thor -----------------------------------------------------------------------------------------
def run_thor(setup: Setup, model: Any, tok: Any, args: argparse.Namespace, out: Path) -> Timing:
    from thor.algos.loop import TrainConfig, Trainer

    n = setup.prompts * setup.group
    cfg = TrainConfig(
        algorithm={
            "name": "grpo",
            "group_size": setup.group,
            "prompts_per_step": setup.prompts,
            "dynamic_sampling": False,  # the same work every step (TRL has no dynamic sampling)
            "loss": {"nll_coef": 0.0, "eps_low": 0.2, "eps_high": 0.28},
        },
        rollout={
            "agent": {"name": "cot", "temperature": 1.0},
            "env": {
                "reward": "bench_digit_share",
                "max_response_tokens": setup.tokens,
                "sandbox": {"name": "local", "require_isolation": not args.no_isolation},
            },
            "batch_size": n,
            "cohorts": 1,  # no tools: one generation batch of every completion, as TRL does
        },
        optim={"lr": 1e-6, "micro_batch_size": n},
        precision=args.precision,
        steps=args.warmup + args.steps,
        save_every=10_000,
        export=False,
        progress=False,
        out_dir=out,
        seed=0,
    )
    trainer = Trainer(cfg, model=model, tokenizer=tok, problems=problems_for(setup.prompts))
    # exactly `tokens` per completion: the policy stops on no EOS (max_tokens cuts it)
    trainer.policy.eos_token_ids = frozenset()
    trainer.policy._dm.eos_ids = frozenset()
    timing = Timing()
    try:
        for i in range(args.warmup + args.steps):
            t0 = time.perf_counter()
            m = trainer.train_step()
            wall = time.perf_counter() - t0
            if i >= args.warmup:
                timing.steps.append(wall)
                timing.generate.append(m["time_generate"])
                timing.execute.append(m["time_execute"])
                timing.update.append(m["time_update"])
                timing.tokens.append(m["tokens_generated"] / n)
    finally:
        trainer.engine.close()
    return timing


# -- TRL ------------------------------------------------------------------------------------------
def run_trl(
    setup: Setup,
    model: Any,
    tok: Any,
    args: argparse.Namespace,
    out: Path,
    prompt_tokens: list[float],
) -> Timing:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    n = setup.prompts * setup.group
    problems = problems_for(setup.prompts)
    data = Dataset.from_list([{"prompt": messages_for(p.problem, "cot", None)} for p in problems])
    # transformers renamed gradient_checkpointing to activation_checkpointing (5.2x)
    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    no_checkpointing = {key: False}
    config = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=n,
        num_generations=setup.group,
        gradient_accumulation_steps=1,
        max_completion_length=setup.tokens,
        generation_kwargs={"min_new_tokens": setup.tokens},
        temperature=1.0,
        top_p=1.0,
        learning_rate=1e-6,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        bf16=args.precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        **no_checkpointing,
        max_steps=args.warmup + args.steps,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        shuffle_dataset=False,
    )
    timing = Timing()
    gen = [0.0]
    lengths: list[float] = []
    seen_tokens = [0.0]

    class Clock(TrainerCallback):  # type: ignore[misc]
        t0 = 0.0

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            gen[0] = 0.0
            self.t0 = time.perf_counter()

        def on_step_end(self, a: Any, state: Any, *rest: Any, **k: Any) -> None:
            if state.global_step > args.warmup:
                timing.steps.append(time.perf_counter() - self.t0)
                timing.generate.append(gen[0])

        def on_log(self, a: Any, state: Any, c: Any, logs: Any = None, **k: Any) -> None:
            if not logs or "completions/mean_length" not in logs:
                return
            total = float(logs["num_tokens"])  # prompt + completion tokens seen so far
            step_tokens, seen_tokens[0] = total - seen_tokens[0], total
            mean_len = float(logs["completions/mean_length"])
            prompt_tokens.append(step_tokens / n - mean_len)
            if state.global_step > args.warmup:
                lengths.append(mean_len)

    trainer = GRPOTrainer(
        model=model,
        processing_class=tok,
        reward_funcs=trl_digit_share,
        args=config,
        train_dataset=data,
        callbacks=[Clock()],
    )
    inner = trainer._generate_single_turn

    def timed(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            gen[0] += time.perf_counter() - t0

    trainer._generate_single_turn = timed
    trainer.train()
    timing.tokens = lengths
    timing.update = [s - g for s, g in zip(timing.steps, timing.generate, strict=True)]
    return timing


# -- main -----------------------------------------------------------------------------------------
def load_tiny() -> tuple[Any, Any]:
    from thor.testing import tiny_model, tiny_tokenizer

    return tiny_model(seed=0), tiny_tokenizer()


def load_smollm2() -> tuple[Any, Any]:
    from thor.algos.loop import load_causal_lm

    return load_causal_lm("embedded")


# Qwen2.5-0.5B's shape (THOR-SPEC's smallest policy family), random weights: no hub needed. The
# vocabulary is the tokenizer's (SmolLM2's 49,152 tokens unless --tokenizer names another).
QWEN_SHAPES = {
    "qwen0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
    },
    # the same code path in seconds on a CPU (a dry run of the GPU row)
    "qwen-mini": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}


def qwen_loader(shape: str, tokenizer: str, precision: str) -> Callable[[], tuple[Any, Any]]:
    def load() -> tuple[Any, Any]:
        from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

        from thor.agents.backends.hf import load_hf_tokenizer, resolve_model_path

        if tokenizer == "embedded":
            tok = load_hf_tokenizer("embedded")
            source = str(resolve_model_path("embedded")[0])
        else:
            tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
            source = tokenizer
        config = Qwen2Config(
            vocab_size=len(tok),
            max_position_embeddings=4096,
            rope_theta=1_000_000.0,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **QWEN_SHAPES[shape],
        )
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
        if precision == "bf16":
            model = model.to(torch.bfloat16)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = model.to(device)
        n = sum(p.numel() for p in model.parameters())
        print(f"{shape}: {n / 1e6:.0f} M parameters, random weights, tokenizer {source}, {device}")
        return model, tok

    return load


def prompt_lengths(tok: Any, n: int) -> list[int]:
    msgs = [messages_for(p.problem, "cot", None) for p in problems_for(n)]
    texts = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in msgs]
    return [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        default="tiny,smollm2",
        help="tiny, smollm2, qwen0.5b (random weights; for a GPU), qwen-mini (comma-separated)",
    )
    parser.add_argument(
        "--tokenizer", default="embedded", help="tokenizer of the qwen rows (a local directory)"
    )
    parser.add_argument(
        "--no-isolation",
        action="store_true",
        help="run thor's sandbox without bubblewrap (no code runs here: the agent is cot)",
    )
    parser.add_argument("--steps", type=int, default=3, help="measured steps per trainer")
    parser.add_argument("--warmup", type=int, default=1, help="steps left out of the figures")
    parser.add_argument("--rounds", type=int, default=1, help="repeat thor/TRL, alternating order")
    parser.add_argument("--tokens", type=int, help="generated tokens per completion")
    parser.add_argument("--prompts", type=int, help="prompts per step")
    parser.add_argument("--group", type=int, default=4, help="completions per prompt (G)")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 where the hardware runs it natively (thor.hardware), else fp32",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: 1 for the tiny model, where more threads only contend, "
        "torch's default for SmolLM2)",
    )
    args = parser.parse_args()
    if args.precision == "auto":
        from thor.hardware import bf16_is_fast

        device = "cuda" if torch.cuda.is_available() else "cpu"
        args.precision = "bf16" if bf16_is_fast(device) else "fp32"
    default_threads = torch.get_num_threads()
    setups = {
        "tiny": Setup("tiny", load_tiny, args.prompts or 4, args.group, args.tokens or 64),
        "smollm2": Setup("smollm2", load_smollm2, args.prompts or 2, args.group, args.tokens or 32),
    }
    for shape in QWEN_SHAPES:  # the GPU row: 64 completions x 256 tokens by default
        load = qwen_loader(shape, args.tokenizer, args.precision)
        setups[shape] = Setup(shape, load, args.prompts or 16, args.group, args.tokens or 256)
    rows = []
    for name in args.models.split(","):
        setup = setups[name]
        threads = args.threads or (1 if name == "tiny" else default_threads)
        torch.set_num_threads(threads)
        base, tok = setup.load()
        thor_t, trl_t = Timing(), Timing()
        trl_prompt: list[float] = []
        for r in range(args.rounds):
            order = ["thor", "trl"] if r % 2 == 0 else ["trl", "thor"]
            for who in order:
                out = Path(tempfile.mkdtemp(prefix=f"bench-{who}-"))
                try:
                    model = copy.deepcopy(base)
                    if who == "thor":
                        t = run_thor(setup, model, tok, args, out)
                    else:
                        t = run_trl(setup, model, tok, args, out, trl_prompt)
                finally:
                    shutil.rmtree(out, ignore_errors=True)
                print(f"{name} {who}: {statistics.fmean(t.steps):.2f} s/step", flush=True)
                acc = thor_t if who == "thor" else trl_t
                for k in ("steps", "generate", "execute", "update", "tokens"):
                    getattr(acc, k).extend(getattr(t, k))
        plen = prompt_lengths(tok, setup.prompts)
        rows.append((setup, thor_t, trl_t, plen, threads, trl_prompt))
    print(
        f"\nGRPO step, warm-up excluded ({args.precision}, {args.steps} steps x {args.rounds} "
        "rounds per trainer)"
    )
    head = (
        f"{'model':8} {'P x G':6} {'tok':>4} {'prompt tok':>10} | {'thor s/step':>11} "
        f"{'gen':>6} {'exec':>6} {'update':>6} | {'TRL s/step':>10} {'gen':>6} {'update':>6} "
        f"| {'thor/TRL':>8}"
    )
    print(head)
    print("-" * len(head))
    for setup, a, b, plen, threads, trl_prompt in rows:
        ratio = a.mean("steps") / b.mean("steps")
        print(
            f"{setup.name:8} {setup.prompts}x{setup.group:<4} {setup.tokens:>4} "
            f"{min(plen):>4}-{max(plen):<5} | {a.mean('steps'):>11.3f} {a.mean('generate'):>6.2f} "
            f"{a.mean('execute'):>6.2f} {a.mean('update'):>6.2f} | {b.mean('steps'):>10.3f} "
            f"{b.mean('generate'):>6.2f} {b.mean('update'):>6.2f} | {ratio:>8.2f}"
        )
        print(
            f"{'':8} {threads} torch threads; generated tokens per completion: thor "
            f"{a.mean('tokens'):.1f}, "
            f"TRL {b.mean('tokens'):.1f}; mean prompt tokens: thor {statistics.fmean(plen):.1f}, "
            f"TRL {statistics.fmean(trl_prompt) if trl_prompt else float('nan'):.1f}; step times thor "
            f"{', '.join(f'{x:.2f}' for x in a.steps)}; TRL {', '.join(f'{x:.2f}' for x in b.steps)}"
        )
    print(
        "thor 'update': forward, backward and optimizer step over the batch (on-policy: no "
        "separate old-logprob pass); TRL 'update': its step minus generation (scoring, forward, "
        "backward, optimizer)."
    )


if __name__ == "__main__":
    main()
