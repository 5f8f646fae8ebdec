"""SFT cold start: the loss mask covers exactly the model-written tokens; a run learns and exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thor.algos.sft import SFTConfig, load_rows, masked_nll, sft, sft_trainer, tokenize_row
from thor.errors import ConfigError
from thor.testing import tiny_model, tiny_tokenizer

F = "```"
TEXT = "Let me compute.\n"
CODE = f"{F}python\nprint(6 * 7)\n{F}"
OUTPUT = f"\n{F}output\n42\n{F}\n"
TAIL = "So the answer is \\boxed{42}."


def hand_row() -> dict:
    content = TEXT + CODE + OUTPUT + TAIL
    a = len(TEXT + CODE)
    b = a + len(OUTPUT)
    return {
        "prompt": [
            {"role": "system", "content": "Solve it."},
            {"role": "user", "content": "What is 6*7?"},
        ],
        "completion": [{"role": "assistant", "content": content}],
        "model_spans": [[0, len(TEXT)], [len(TEXT), a], [b, len(content)]],  # adjacent: merged
        "provenance": {"problem_id": "p"},
    }


def trained_text(tok, ex: dict) -> tuple[str, str]:
    ids, mask = ex["input_ids"], ex["assistant_masks"]
    on = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    off = tok.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    return on, off


def test_mask_covers_exactly_the_model_written_tokens() -> None:
    tok = tiny_tokenizer()
    row = hand_row()
    ex = tokenize_row(tok, row)
    on, off = trained_text(tok, ex)
    assert on == TEXT + CODE + TAIL + tok.eos_token  # EOS is trained: the model learns to stop
    prompt = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert off == prompt + OUTPUT  # the prompt and the tool output are masked
    # the prompt tokens are exactly what the rollout engine feeds the policy
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert ex["input_ids"][:n] == tok(prompt, add_special_tokens=False)["input_ids"]
    assert ex["assistant_masks"][:n] == [0] * n


def test_offset_mode_agrees_where_boundaries_are_clean() -> None:
    tok = tiny_tokenizer()
    seg = tokenize_row(tok, hand_row(), mask_mode="segments")
    off = tokenize_row(tok, hand_row(), mask_mode="offsets")
    assert seg == off  # no token of this sample straddles a model/tool boundary
    with pytest.raises(ValueError, match="mask_mode"):
        tokenize_row(tok, hand_row(), mask_mode="chars")


pieces = st.lists(
    st.tuples(st.booleans(), st.text(alphabet="ab 1\n`=()+xy", min_size=1, max_size=12)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(pieces)
def test_segments_mask_round_trips_any_split(parts: list[tuple[bool, str]]) -> None:
    tok = tiny_tokenizer()
    content, spans, pos = "", [], 0
    for model, text in parts:
        if model:
            spans.append([pos, pos + len(text)])
        content += text
        pos += len(text)
    row = {
        "prompt": [{"role": "user", "content": "q"}],
        "completion": content,
        "model_spans": spans,
    }
    ex = tokenize_row(tok, row)
    on, _ = trained_text(tok, ex)
    assert on == "".join(t for m, t in parts if m) + tok.eos_token


def test_bad_spans_and_files_fail_clearly(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    row = hand_row()
    row["model_spans"] = [[0, 10_000]]
    with pytest.raises(ValueError, match="outside"):
        tokenize_row(tok, row)
    with pytest.raises(ConfigError, match="not found"):
        load_rows(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": []}) + "\n")
    with pytest.raises(ConfigError, match="model_spans"):
        load_rows(bad)


def rows(n: int) -> list[dict]:
    out = []
    for i in range(n):
        text = f"We compute {i} times 7.\n{F}python\nprint({i} * 7)\n{F}"
        obs = f"\n{F}output\n{i * 7}\n{F}\n"
        tail = f"So the answer is \\boxed{{{i * 7}}}."
        content = text + obs + tail
        out.append(
            {
                "prompt": [{"role": "user", "content": f"What is {i}*7?"}],
                "completion": [{"role": "assistant", "content": content}],
                "model_spans": [[0, len(text)], [len(text) + len(obs), len(content)]],
            }
        )
    return out


@pytest.mark.timeout(300)
def test_sft_lowers_the_loss_and_exports_a_loadable_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from thor.agents.backends.hf import HFPolicy
    from thor.types import SamplingParams

    data = rows(8)
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    cfg = SFTConfig(
        data=path,
        lr=3e-3,
        epochs=3,
        batch_size=4,
        bf16=False,
        out_dir=tmp_path / "run",
        progress=False,
    )
    tok, model = tiny_tokenizer(), tiny_model(seed=0)
    trainer = sft_trainer(cfg, model=model, tokenizer=tok)
    # what TRL trains on: labels are -100 exactly where thor's mask is 0 (prompt, tool output)
    ex = tokenize_row(tok, data[0])
    labels = trainer.train_dataset[0]["labels"]
    assert trainer.train_dataset[0]["input_ids"] == ex["input_ids"]
    assert labels == [
        t if m else -100 for t, m in zip(ex["input_ids"], ex["assistant_masks"], strict=True)
    ]

    examples = [tokenize_row(tok, r) for r in data]
    before = masked_nll(model, examples)
    export = sft(cfg, model=model, tokenizer=tok)
    after = masked_nll(model, examples)
    assert after < before - 0.5, (before, after)
    rows_logged = [
        json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows_logged] == list(range(1, 7)) and "loss" in rows_logged[0]

    loaded = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
    for (n, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters(), strict=True):
        assert torch.equal(a.detach(), b.detach()), n
    policy = HFPolicy(model=str(export), dtype="float32", device="cpu")
    [c] = policy.generate(["What is 3*7?"], SamplingParams(max_tokens=4, temperature=0.0))
    assert c.token_ids and c.text == policy.decode(c.token_ids)


@pytest.mark.timeout(300)
def test_packed_sft_loss_equals_trl_loss(tmp_path: Path) -> None:
    """The packed (padding-free) loss thor's SFT trainer uses is TRL's loss, value and gradient."""
    from thor.algos import logprobs

    cfg = SFTConfig(data=tmp_path / "x.jsonl", batch_size=4, bf16=False, out_dir=tmp_path / "r")
    model = tiny_model(seed=0)
    trainer = sft_trainer(cfg, model=model, tokenizer=tiny_tokenizer(), rows=rows(4))
    model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    assert logprobs._packable(model, batch["attention_mask"]) is not None
    results = []
    for packed in (True, False):
        model.zero_grad(set_to_none=True)
        if not packed:
            model.config.attention_dropout = 1e-9  # the packed path declines; TRL's own runs
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=None)
        loss.backward()
        results.append((float(loss), [p.grad.clone() for p in model.parameters()]))
    model.config.attention_dropout = 0.0
    (la, ga), (lb, gb) = results
    assert la == pytest.approx(lb, rel=1e-5)
    for a, b in zip(ga, gb, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
