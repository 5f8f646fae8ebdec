"""Tokens/s of thor's policy backends on the same prompts, side by side.

Rows (greedy decoding, TIR stop rule on, the same GSM8K prompts):

- ``hf-loop``: HFPolicy's own batched decode loop (what thor uses), batch 1 and batch N;
- ``hf-generate``: transformers' ``model.generate`` with a custom StoppingCriteria doing the same
  per-row stop checks (the alternative the loop was measured against), batch 1 and batch N;
  ``--static`` adds the same with ``cache_implementation="static"``;
- ``openai``: OpenAIPolicy -> ``thor serve`` (in-process server thread, loopback HTTP) -> HFPolicy;
- ``vllm``: VLLMPolicy, when vllm is importable (run this script with .venv-vllm/bin/python).

Each row is run ``--repeats`` times, round-robin with the others, and its fastest run is kept.
Every row also reports whether it produced the same tokens as ``hf-loop`` at batch 1 (greedy, so
they should, up to floating-point effects of batching). Timings on a shared 2-core machine are
noisy: read them as sizes, and re-run on a quiet machine.

Usage:
    .venv/bin/python benchmarks/backends.py --prompts 8 --max-tokens 64
    .venv/bin/python benchmarks/backends.py --dtypes bfloat16,float32 --skip-openai
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from thor.types import Completion, SamplingParams

SYSTEM = (
    "Integrate step-by-step reasoning and Python code to solve math problems. Write code in a "
    "```python block that prints its result; put the final answer within \\boxed{}."
)


@dataclass
class Row:
    backend: str
    batch: int
    dtype: str
    tokens: int
    seconds: float
    same: str

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


SHORT_QUESTIONS = (
    "What is the capital of France?",
    "What color is the sky on a clear day?",
    "How many legs does a spider have?",
    "What is the opposite of hot?",
)


def load_prompts(policy: Any, n: int, workload: str = "gsm8k") -> list[str]:
    """GSM8K problems with a TIR system prompt; ``mixed``: every other one a short question
    (answered in a few tokens), so rows finish at very different lengths, as episodes do."""
    from thor.data.loaders import load_problems

    problems = load_problems("gsm8k")[:n]
    out = []
    for i, p in enumerate(problems):
        if workload == "mixed" and i % 2:
            messages = [
                {"role": "user", "content": SHORT_QUESTIONS[(i // 2) % len(SHORT_QUESTIONS)]}
            ]
        else:
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": p.problem},
            ]
        out.append(policy.apply_chat_template(messages))
    return out


def timed(fn: Callable[[], list[Completion]]) -> tuple[list[Completion], float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def one_at_a_time(
    gen: Callable[[Sequence[Any], SamplingParams], list[Completion]],
    prompts: list[str],
    params: SamplingParams,
) -> list[Completion]:
    return [gen([p], params)[0] for p in prompts]


def hf_generate(
    policy: Any, prompts: Sequence[str], params: SamplingParams, cache: str | None = None
) -> list[Completion]:
    """The same job through ``model.generate`` + a StoppingCriteria running thor's stop checks."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from thor.agents.backends.base import StopChecker, make_completion

    tok = policy.tokenizer
    tok.padding_side = "left"
    enc = tok(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    width = enc["input_ids"].shape[1]
    checkers = [StopChecker(policy.decode, params, policy.eos_token_ids) for _ in prompts]

    class ThorStops(StoppingCriteria):
        def __call__(
            self, input_ids: torch.Tensor, scores: torch.Tensor, **kw: Any
        ) -> torch.Tensor:
            done = []
            for row, checker in enumerate(checkers):
                if not checker.done:
                    checker.push(int(input_ids[row, -1]))
                done.append(checker.done)
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    with torch.inference_mode():
        out = policy.model.generate(
            **enc,
            max_new_tokens=params.max_tokens,
            do_sample=False,
            stopping_criteria=StoppingCriteriaList([ThorStops()]),
            pad_token_id=tok.pad_token_id,
            eos_token_id=sorted(policy.eos_token_ids),
            output_logits=True,
            return_dict_in_generate=True,
            **({"cache_implementation": cache} if cache else {}),
        )
    logits = torch.stack(out.logits, dim=1).float()  # [batch, steps, vocab]
    results = []
    for row, checker in enumerate(checkers):
        ids = checker.ids
        gen = out.sequences[row, width : width + len(ids)]
        lp = torch.log_softmax(logits[row, : len(ids)], -1).gather(-1, gen[:, None])[:, 0].tolist()
        results.append(make_completion(ids, policy.decode, checker.finish_reason or "length", lp))
    return results


def bench_hf(
    args: argparse.Namespace, dtype: str, rows: list[Row], reference: dict[str, list[list[int]]]
) -> Any:
    from thor.agents.backends.hf import HFPolicy

    policy = HFPolicy(model=args.model, dtype=dtype)
    prompts = load_prompts(policy, args.prompts, args.workload)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, stop_at_code_close=True)
    policy.generate(prompts[:1], SamplingParams(max_tokens=2, temperature=0.0))  # warm-up
    jobs: list[tuple[str, int, Callable[[], list[Completion]]]] = [
        ("hf-loop", 1, lambda: one_at_a_time(policy.generate, prompts, params)),
        ("hf-loop", len(prompts), lambda: policy.generate(prompts, params)),
    ]
    if not args.skip_generate:
        jobs += [
            (
                "hf-generate",
                1,
                lambda: one_at_a_time(lambda p, s: hf_generate(policy, p, s), prompts, params),
            ),
            ("hf-generate", len(prompts), lambda: hf_generate(policy, prompts, params)),
        ]
    if args.static:
        jobs += [
            (
                "hf-generate-static",
                1,
                lambda: one_at_a_time(
                    lambda p, s: hf_generate(policy, p, s, "static"), prompts, params
                ),
            ),
            (
                "hf-generate-static",
                len(prompts),
                lambda: hf_generate(policy, prompts, params, "static"),
            ),
        ]
    run_jobs(jobs, args.repeats, dtype, rows, reference)
    return policy, prompts, params


def bench_openai(
    policy: Any,
    prompts: list[str],
    params: SamplingParams,
    dtype: str,
    rows: list[Row],
    reference: dict[str, list[list[int]]],
    repeats: int,
) -> None:
    from thor.agents.backends.openai_client import OpenAIPolicy
    from thor.agents.backends.server import PolicyServer

    with PolicyServer(policy, port=0, model_name="bench") as server:
        client = OpenAIPolicy(
            base_url=server.url,
            model="bench",
            tokenizer=_tokenizer_source(policy),
            concurrency=len(prompts),
        )
        jobs: list[tuple[str, int, Callable[[], list[Completion]]]] = [
            ("openai(thor serve)", 1, lambda: one_at_a_time(client.generate, prompts, params)),
            ("openai(thor serve)", len(prompts), lambda: client.generate(prompts, params)),
        ]
        run_jobs(jobs, repeats, dtype, rows, reference)
        client.close()


def _tokenizer_source(policy: Any) -> str:
    cfg = getattr(policy, "config", None)
    return str(getattr(cfg, "model", "embedded"))


def bench_vllm(
    args: argparse.Namespace, dtype: str, rows: list[Row], reference: dict[str, list[list[int]]]
) -> None:
    from thor.agents.backends.vllm_engine import VLLMPolicy

    t0 = time.perf_counter()
    policy = VLLMPolicy(model=args.model, dtype=dtype, enforce_eager=not args.vllm_compile)
    print(f"  vllm engine start: {time.perf_counter() - t0:.1f} s", flush=True)
    prompts = load_prompts(policy, args.prompts, args.workload)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, stop_at_code_close=True)
    policy.generate(prompts[:1], SamplingParams(max_tokens=2, temperature=0.0))
    jobs: list[tuple[str, int, Callable[[], list[Completion]]]] = [
        ("vllm", 1, lambda: one_at_a_time(policy.generate, prompts, params)),
        ("vllm", len(prompts), lambda: policy.generate(prompts, params)),
    ]
    run_jobs(jobs, args.repeats, dtype, rows, reference)
    policy.close()


def run_jobs(
    jobs: list[tuple[str, int, Callable[[], list[Completion]]]],
    repeats: int,
    dtype: str,
    rows: list[Row],
    reference: dict[str, list[list[int]]],
) -> None:
    """Run the jobs round-robin ``repeats`` times; keep each job's fastest run (least disturbed)."""
    best: dict[int, float] = {}
    outs: dict[int, list[Completion]] = {}
    for r in range(repeats):
        for j, (name, batch, fn) in enumerate(jobs):
            out, secs = timed(fn)
            outs[j], best[j] = out, min(secs, best.get(j, secs))
            rate = sum(len(c.token_ids) for c in out) / secs
            print(
                f"  [{r + 1}/{repeats}] {name} batch {batch} {dtype}: {rate:.1f} tokens/s",
                flush=True,
            )
    for j, (name, batch, _) in enumerate(jobs):
        ids = [c.token_ids for c in outs[j]]
        ref = reference.setdefault(dtype, ids)
        same = sum(a == b for a, b in zip(ids, ref, strict=True))
        rows.append(Row(name, batch, dtype, sum(map(len, ids)), best[j], f"{same}/{len(ids)}"))


def print_table(rows: list[Row]) -> None:
    base = {r.dtype: r.rate for r in rows if r.backend == "hf-loop" and r.batch == 1}
    print()
    print(
        f"{'backend':<20} {'batch':>5} {'dtype':>9} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} "
        f"{'x hf-loop b1':>12} {'same tokens':>11}"
    )
    for r in rows:
        ratio = f"{r.rate / base[r.dtype]:.2f}" if base.get(r.dtype) else "-"
        print(
            f"{r.backend:<20} {r.batch:>5} {r.dtype:>9} {r.tokens:>7} {r.seconds:>8.1f} {r.rate:>9.1f} "
            f"{ratio:>12} {r.same:>11}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--prompts", type=int, default=8, help="GSM8K problems (= the batch size)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument(
        "--workload",
        choices=["gsm8k", "mixed"],
        default="gsm8k",
        help="mixed: every other prompt is a short question, so rows finish at different lengths",
    )
    ap.add_argument("--dtypes", default="bfloat16", help="comma-separated: bfloat16,float32")
    ap.add_argument("--skip-generate", action="store_true", help="skip model.generate rows")
    ap.add_argument("--skip-openai", action="store_true", help="skip the HTTP rows")
    ap.add_argument(
        "--static", action="store_true", help="add model.generate rows with a static cache"
    )
    ap.add_argument("--vllm", action="store_true", help="add vLLM rows (needs vllm: .venv-vllm)")
    ap.add_argument(
        "--vllm-compile", action="store_true", help="let vLLM compile (default: eager mode)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default; 1 on a busy machine)",
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs per row (round-robin); best is kept"
    )
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows: list[Row] = []
    reference: dict[str, list[list[int]]] = {}
    for dtype in args.dtypes.split(","):
        if importlib.util.find_spec("transformers") is not None:
            policy, prompts, params = bench_hf(args, dtype, rows, reference)
            if not args.skip_openai:
                bench_openai(policy, prompts, params, dtype, rows, reference, args.repeats)
            policy.close()
        if args.vllm:
            bench_vllm(args, dtype, rows, reference)
    print_table(rows)


if __name__ == "__main__":
    main()
