"""``thor sft --config sft.yaml``: cold-start SFT on TIRGen output (a thin layer over thor.algos.sft)."""

from __future__ import annotations

import argparse

from thor.cli.train import add_config_arguments, load_run_config, print_config, setup_run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sft",
        help="cold-start SFT on TIRGen data (loss on model-written tokens only)",
        description="Fine-tunes a model on `thor tirgen` output with TRL's SFTTrainer: prompts and "
        "tool outputs are masked, model-written text is trained on. Writes OUT_DIR/model (an HF "
        "directory `thor train` takes as its model) and OUT_DIR/metrics.jsonl.",
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from thor.algos.sft import SFTConfig, sft

    setup_run(args)
    cfg = load_run_config(SFTConfig, args.config, args.overrides)
    if args.print_config:
        print_config(cfg)
        return 0
    model = sft(cfg)
    print(f"SFT model: {model}")
    print(f"  metrics: {cfg.out_dir / 'metrics.jsonl'}  (plot them: thor plot {cfg.out_dir})")
    print(f"  next:    thor train --set model={model} ...")
    return 0
