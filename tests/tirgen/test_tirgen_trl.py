"""TRL's SFTTrainer takes TIRGen's output file as it is (one real training step on CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tirgen_fakes import SolutionActor

from thor.data.synthetic import generate_problems, write_problems_jsonl
from thor.data.tirgen import RuleCritic, TirgenConfig, run_tirgen


@pytest.mark.slow  # about 15 s on a quiet 2-core machine, most of it importing TRL
@pytest.mark.timeout(300)
def test_sft_trainer_takes_the_file(tmp_path: Path) -> None:
    import torch
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from thor.testing import tiny_model, tiny_tokenizer

    problems = generate_problems(8, seed=2, families=["arithmetic", "modular"])
    pfile = write_problems_jsonl(problems, tmp_path / "problems.jsonl")
    out = tmp_path / "out"
    cfg = TirgenConfig(
        problems=str(pfile),
        out=out,
        step_tokens=64,
        attempts=2,
        difficulty=False,
        progress=False,
        max_one_call_fraction=1.0,
    )
    funnel = run_tirgen(cfg, actor=SolutionActor(problems), critic=RuleCritic())
    assert funnel.samples >= 2

    ds = load_dataset("json", data_files=str(out / "sft.jsonl"), split="train")
    assert {"prompt", "completion", "model_spans", "provenance"} <= set(ds.column_names)
    model = tiny_model(seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tiny_tokenizer()
    )
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
    changed = sum(
        not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True)
    )
    assert changed > 0  # the step trained the model
