"""CPU speed of the embedded model (SmolLM2-135M): thor's default path vs today's fp32 HF loop vs llama.cpp.

Side by side in one process, interleaved round by round on the same prompts and data, the fastest
round of each row kept:

- decode tokens/s at each ``--batches`` size (greedy, GSM8K prompts with thor's TIR system
  prompt): ``baseline`` = HFPolicy with transformers' forward in float32 (``engine="hf"``, the
  loop as it was), ``thor`` = HFPolicy with its CPU defaults in float32 (``HFPolicyConfig(dtype=
  "float32")``, the fast dtype of an AVX2 CPU; ``--thor-dtype auto`` for the auto dtype), and with
  ``--int8`` also the int8 rollout weights; decode time is a call's time minus the time of the
  same call cut to one token (its prefill), so the two do not mix;
- prefill tokens/s: the prompts of the largest batch, one token generated;
- train tokens/s: the GRPO update's forward + backward (``token_logprobs`` at the sampling
  temperature, the clipped loss, AdamW) on micro-batches of real prompts with random responses,
  padded (as before) vs packed (thor's default for Llama-family models on a CPU);
- llama.cpp on the same GGUF through ``llama_cpp.server`` on loopback (``--llama-python``: an
  interpreter that has ``llama-cpp-python[server]``), decode at batch 1; skipped with the reason
  when it is not installed.

Greedy agreement with the baseline is reported per row (``same``: identical completions). The
ratios are printed last, one per line (``decode batch 1: 1.23x``...). The machine is shared and
noisy: the script prints the load average before and after; read the figures as sizes.

Usage:
    .venv/bin/python benchmarks/cpu_speed.py --quick
    .venv/bin/python benchmarks/cpu_speed.py --llama-python /path/to/llamacpp-venv/bin/python --int8
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backends import load_prompts

from thor.types import SamplingParams


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# -- generation -----------------------------------------------------------------------------------
def policies(int8: bool, dtype: str) -> dict[str, Any]:
    from thor.agents.backends.hf import HFPolicy, HFPolicyConfig

    rows = {
        "baseline": HFPolicy(
            HFPolicyConfig(dtype="float32", engine="hf", quantize="none", prefix_cache_mb=0)
        ),
        "thor": HFPolicy(HFPolicyConfig(dtype=dtype, prefix_cache_mb=0)),
    }
    if int8:
        rows["int8"] = HFPolicy(HFPolicyConfig(dtype="float32", quantize="int8", prefix_cache_mb=0))
    return rows


def bench_generation(args: argparse.Namespace) -> tuple[dict[str, float], dict[str, str]]:
    pols = policies(args.int8, args.thor_dtype)
    base = pols["baseline"]
    prompts = load_prompts(base, max(args.batches))
    prompt_tokens = [len(base.encode(p)) for p in prompts]
    greedy = SamplingParams(max_tokens=args.max_tokens, temperature=0)
    one = SamplingParams(max_tokens=1, temperature=0)
    best: dict[str, float] = {}
    outs: dict[str, Any] = {}
    for pol in pols.values():  # warm-up: first-call costs (stop-check tables, allocator)
        pol.generate(prompts[:2], SamplingParams(max_tokens=4, temperature=0))
    for rnd in range(args.repeats):
        for b in args.batches:
            for name, pol in pols.items():
                _, t_pre = timed(lambda: pol.generate(prompts[:b], one))  # noqa: B023
                out, t_all = timed(lambda: pol.generate(prompts[:b], greedy))  # noqa: B023
                made = sum(len(c.token_ids) for c in out)
                rate = max(made - b, 1) / max(t_all - t_pre, 1e-9)
                key = f"decode {b} {name}"
                best[key] = max(best.get(key, 0.0), rate)
                outs[f"{b} {name}"] = out
                pre = sum(prompt_tokens[:b]) / t_pre
                if b == max(args.batches):
                    best[f"prefill {name}"] = max(best.get(f"prefill {name}", 0.0), pre)
                print(
                    f"  round {rnd} batch {b:3d} {name:8s} decode {rate:7.1f} tok/s "
                    f"prefill {pre:7.1f} tok/s ({load()})",
                    flush=True,
                )
    same = {}
    for b in args.batches:
        ref = outs[f"{b} baseline"]
        for name in pols:
            got = outs[f"{b} {name}"]
            n = sum(x.token_ids == y.token_ids for x, y in zip(ref, got, strict=True))
            same[f"{b} {name}"] = f"{n}/{b}"
    thor_dtype = str(next(pols["thor"].model.parameters()).dtype).replace("torch.", "")
    same["thor dtype"] = thor_dtype
    return best, same


# -- training -------------------------------------------------------------------------------------
def bench_train(args: argparse.Namespace) -> dict[str, float]:
    from thor.algos import logprobs
    from thor.algos.batch import TrainSample, collate
    from thor.algos.loop import load_causal_lm
    from thor.algos.losses import GRPOLoss

    model, tok = load_causal_lm("embedded")
    model.train()
    prompts = load_prompts(_Tok(tok), args.train_rows)
    gen = torch.Generator().manual_seed(0)
    samples = []
    for i, p in enumerate(prompts):
        n = int(torch.randint(args.train_min, args.train_max + 1, (), generator=gen))
        resp = torch.randint(0, len(tok) - 1, (n,), generator=gen).tolist()
        ids = tok(p, add_special_tokens=False)["input_ids"]
        samples.append(
            TrainSample(
                prompt_ids=ids,
                response_ids=resp,
                loss_mask=[1] * n,
                advantage=1.0 if i % 2 else -1.0,
            )
        )
    batch = collate(samples, pad_token_id=int(tok.pad_token_id or 0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-7)
    loss_fn = GRPOLoss()
    packable = logprobs._packable
    tokens = int(batch.attention_mask.sum())
    best: dict[str, float] = {}

    def update(packed: bool) -> None:
        logprobs._packable = packable if packed else (lambda *a, **k: None)  # type: ignore[assignment]
        opt.zero_grad(set_to_none=True)
        den = max(1, batch.num_loss_tokens)
        for start in range(0, batch.size, args.micro_batch):
            micro = batch.select(list(range(start, min(start + args.micro_batch, batch.size))))
            logp = logprobs.token_logprobs(model, micro.input_ids, micro.attention_mask)
            out = loss_fn(logp, logp.detach(), micro.advantages, micro.loss_mask, denominator=den)
            out.loss.backward()
        opt.step()

    try:
        update(True)  # warm-up
        for rnd in range(args.repeats):
            for name, packed in (("baseline", False), ("thor", True)):
                _, t = timed(lambda: update(packed))  # noqa: B023
                best[f"train {name}"] = max(best.get(f"train {name}", 0.0), tokens / t)
                print(
                    f"  round {rnd} train {name:8s} {tokens / t:7.1f} tok/s ({load()})", flush=True
                )
    finally:
        logprobs._packable = packable  # type: ignore[assignment]
    return best


class _Tok:
    """Just enough of a policy for load_prompts: the chat template."""

    def __init__(self, tok: Any) -> None:
        self.tok = tok

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return str(
            self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )


# -- llama.cpp ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def llama_cpp_python(arg: str | None) -> tuple[str | None, str]:
    """An interpreter with ``llama_cpp.server``, or None and why not."""
    candidates = [arg] if arg else [sys.executable]
    for py in candidates:
        if py and Path(py).exists():
            probe = subprocess.run(
                [py, "-c", "import llama_cpp.server"], capture_output=True, timeout=120, check=False
            )
            if probe.returncode == 0:
                return py, ""
    return None, (
        "llama-cpp-python[server] is not importable from "
        f"{candidates[0]!r} (pass --llama-python PATH of an interpreter that has it; it "
        "builds llama.cpp from source, ~10 minutes)"
    )


def bench_llama(args: argparse.Namespace, python: str) -> dict[str, float]:
    from thor.agents.backends.embedded import embedded_gguf_path
    from thor.agents.backends.hf import load_hf_tokenizer

    tok = load_hf_tokenizer("embedded")
    prompts = load_prompts(_Tok(tok), args.llama_prompts)
    port = _free_port()
    cmd = [
        python,
        "-m",
        "llama_cpp.server",
        "--model",
        str(embedded_gguf_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(torch.get_num_threads()),
        "--n_ctx",
        "2048",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("llama.cpp server did not start within 180 s") from None
                time.sleep(1)
        best = 0.0
        for _ in range(args.repeats):
            made, spent = 0, 0.0
            for p in prompts:
                body = {"prompt": p, "max_tokens": args.max_tokens, "temperature": 0.0}
                req = urllib.request.Request(
                    f"{url}/completions",
                    json.dumps(body).encode(),
                    {"Content-Type": "application/json"},
                )
                reply, t = timed(
                    lambda r=req: json.loads(urllib.request.urlopen(r, timeout=600).read())
                )
                made += int(reply["usage"]["completion_tokens"])
                spent += t
            best = max(best, made / spent)
            print(f"  llama.cpp decode batch 1 {made / spent:7.1f} tok/s ({load()})", flush=True)
        return {"llama.cpp decode 1": best}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- main -----------------------------------------------------------------------------------------
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a shorter run (under 10 minutes quiet)")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--thor-dtype",
        default="float32",
        help="dtype of the thor row ('auto' picks bf16 on CPUs with native bf16)",
    )
    ap.add_argument("--int8", action="store_true", help="add the int8 rollout weights row")
    ap.add_argument("--train-rows", type=int, default=8)
    ap.add_argument("--train-min", type=int, default=64)
    ap.add_argument("--train-max", type=int, default=384)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument(
        "--llama-python", default=None, help="interpreter with llama-cpp-python[server]"
    )
    ap.add_argument("--llama-prompts", type=int, default=4)
    args = ap.parse_args(argv)
    if args.quick:
        args.max_tokens, args.repeats, args.train_rows = 32, 1, 4
        args.train_max, args.llama_prompts = 192, 2
    args.batches = [int(b) for b in str(args.batches).split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load()}", flush=True)
    gen, same = bench_generation(args)
    train = bench_train(args)
    python, why = llama_cpp_python(args.llama_python)
    llama = bench_llama(args, python) if python else {}
    print(f"\nfinished; {load()}")
    print(f"thor default dtype on this CPU: {same.pop('thor dtype')}")
    for key, value in {**gen, **train, **llama}.items():
        print(f"{key:28s} {value:8.1f} tok/s")
    for key, value in same.items():
        print(f"greedy completions identical to the baseline, batch {key}: {value}")
    if not python:
        print(f"llama.cpp skipped: {why}")
    elif "llama.cpp decode 1" in llama:
        share = gen["decode 1 thor"] / llama["llama.cpp decode 1"]
        print(f"thor / llama.cpp decode batch 1: {share:.2f}x")
    for b in args.batches:
        print(f"decode batch {b}: {gen[f'decode {b} thor'] / gen[f'decode {b} baseline']:.2f}x")
    print(f"prefill: {gen['prefill thor'] / gen['prefill baseline']:.2f}x")
    print(f"train: {train['train thor'] / train['train baseline']:.2f}x")


if __name__ == "__main__":
    main()
