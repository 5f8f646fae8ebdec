from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from thor.algos.batch import KINDS, TrainSample, collate
from thor.algos.logprobs import token_logprobs
from thor.algos.losses import GRPOLoss
from thor.testing import tiny_model, tiny_tokenizer
from thor.text.protocol import format_output
from thor.types import Episode, ExecResult, ToolCall, Turn

TOK = tiny_tokenizer()


def _episode() -> Episode:
    t1 = "Let me compute.\n```python\nprint(6 * 7)\n```"
    obs = format_output(ExecResult(status="ok", stdout="42\n"))
    t2 = "So the answer is \\boxed{42}."
    ids1, ids2, obs_ids = TOK.encode(t1), TOK.encode(t2), TOK.encode(obs)
    return Episode(
        id="ep1",
        problem="6*7?",
        prompt="Q: 6*7?\n",
        prompt_token_ids=TOK.encode("Q: 6*7?\n"),
        turns=[
            Turn(
                text=t1,
                token_ids=ids1,
                logprobs=[-0.5] * len(ids1),
                call=ToolCall(code="print(6 * 7)"),
                result=ExecResult(status="ok", stdout="42\n"),
                observation=obs,
                observation_token_ids=obs_ids,
            ),
            Turn(text=t2, token_ids=ids2, logprobs=[-0.25] * len(ids2)),
        ],
        reward=1.0,
    )


def test_from_episode_masks_prompt_and_tool_output() -> None:
    ep = _episode()
    s = TrainSample.from_episode(ep, advantage=0.5, group_id="g0")
    t1, t2 = ep.turns
    assert s.prompt_ids == ep.prompt_token_ids
    assert s.response_ids == t1.token_ids + t1.observation_token_ids + t2.token_ids
    assert s.loss_mask == [1] * len(t1.token_ids) + [0] * len(t1.observation_token_ids) + [1] * len(
        t2.token_ids
    )
    assert s.sampling_logprobs == t1.logprobs + [0.0] * len(t1.observation_token_ids) + t2.logprobs
    assert s.kind == "trajectory" and s.metadata["episode_id"] == "ep1"
    b = collate([s], pad_token_id=TOK.pad_token_id)
    n_prompt = len(ep.prompt_token_ids)
    assert b.loss_mask[0, :n_prompt].sum() == 0
    assert b.num_loss_tokens == len(t1.token_ids) + len(t2.token_ids)
    # the model-written positions decode to exactly the model's text
    written = b.input_ids[0][b.loss_mask[0] == 1].tolist()
    assert TOK.decode(written) == t1.text + t2.text


def test_from_episode_needs_token_ids() -> None:
    ep = _episode()
    with pytest.raises(ValueError, match="prompt_token_ids"):
        TrainSample.from_episode(ep.model_copy(update={"prompt_token_ids": None}), 1.0)
    broken = ep.model_copy(deep=True)
    broken.turns[1].token_ids = None
    with pytest.raises(ValueError, match="no token ids"):
        TrainSample.from_episode(broken, 1.0)
    no_lp = ep.model_copy(deep=True)
    no_lp.turns[0].logprobs = None
    assert TrainSample.from_episode(no_lp, 1.0).sampling_logprobs is None


def _samples() -> list[TrainSample]:
    return [
        TrainSample(
            prompt_ids=[10, 11],
            response_ids=[12, 13, 14],
            loss_mask=[1, 0, 1],
            advantage=1.5,
            old_logprobs=[-1.0, -2.0, -3.0],
        ),
        TrainSample(
            prompt_ids=[20],
            response_ids=[21],
            loss_mask=[1],
            advantage=-0.5,
            kind="step",
            old_logprobs=[-4.0],
            weight=0.5,
        ),
        TrainSample(
            prompt_ids=[30, 31, 32, 33],
            response_ids=[34, 35, 36],
            loss_mask=[1, 1, 1],
            advantage=0.0,
            old_logprobs=[-5.0, -6.0, -7.0],
        ),
    ]


def test_collate_pads_right_and_aligns_everything() -> None:
    b = collate(_samples(), pad_token_id=0)
    assert b.input_ids.tolist() == [
        [10, 11, 12, 13, 14, 0, 0],
        [20, 21, 0, 0, 0, 0, 0],
        [30, 31, 32, 33, 34, 35, 36],
    ]
    assert b.attention_mask.tolist() == [[1] * 5 + [0] * 2, [1] * 2 + [0] * 5, [1] * 7]
    assert b.loss_mask.tolist() == [
        [0, 0, 1, 0, 1, 0, 0],
        [0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 1, 1],
    ]
    assert b.old_logprobs is not None
    assert b.old_logprobs.tolist() == [
        [0, 0, -1, -2, -3, 0, 0],
        [0, -4, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, -5, -6, -7],
    ]
    assert b.advantages.shape == (3, 7) and b.advantages[:, 3].tolist() == [1.5, -0.5, 0.0]
    assert b.sample_advantages.tolist() == [1.5, -0.5, 0.0]
    assert b.sample_weight.tolist() == [1.0, 0.5, 1.0]
    assert b.kind.tolist() == [0, 1, 0] and KINDS[1] == "step"
    assert b.kind_mask("trajectory").tolist() == [True, False, True]
    assert b.prompt_lengths.tolist() == [2, 1, 4]
    assert b.truncated_tokens == 0 and b.truncated_samples == 0
    assert b.sampling_logprobs is None  # no sample has them
    assert b.size == 3 and b.num_loss_tokens == 6


def test_collate_truncates_from_the_right_and_says_so() -> None:
    b = collate(_samples(), pad_token_id=0, max_length=4)
    assert b.input_ids.tolist() == [[10, 11, 12, 13], [20, 21, 0, 0], [30, 31, 32, 33]]
    assert b.truncated_tokens == 1 + 3 and b.truncated_samples == 2
    assert b.loss_mask.tolist() == [
        [0, 0, 1, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 0],
    ]  # the last lost its response
    assert b.old_logprobs is not None and b.old_logprobs[0].tolist() == [0, 0, -1, -2]
    assert collate(_samples(), pad_token_id=0, pad_to_multiple_of=8).input_ids.shape == (3, 8)


def test_collate_drops_old_logprobs_unless_every_sample_has_them() -> None:
    samples = _samples()
    samples[1] = samples[1].model_copy(update={"old_logprobs": None})
    assert collate(samples, pad_token_id=0).old_logprobs is None


def test_select_and_to() -> None:
    b = collate(_samples(), pad_token_id=0)
    step = b.select(b.kind_mask("step"))
    assert step.size == 1 and step.input_ids[0, :2].tolist() == [20, 21]
    assert step.metadata == ({},)
    assert b.select([2, 0]).sample_advantages.tolist() == [0.0, 1.5]
    assert b.to("cpu").input_ids.device.type == "cpu"


def test_validation_errors() -> None:
    with pytest.raises(ValidationError, match="loss_mask has 1 entries"):
        TrainSample(prompt_ids=[1], response_ids=[2, 3], loss_mask=[1])
    with pytest.raises(ValidationError, match="0 or 1"):
        TrainSample(prompt_ids=[1], response_ids=[2], loss_mask=[2])
    with pytest.raises(ValidationError, match="old_logprobs"):
        TrainSample(prompt_ids=[1], response_ids=[2], loss_mask=[1], old_logprobs=[0.0, 0.0])
    with pytest.raises(ValidationError):
        TrainSample(prompt_ids=[1], response_ids=[2], loss_mask=[1], kind="other")
    with pytest.raises(ValueError, match="at least one"):
        collate([], pad_token_id=0)
    with pytest.raises(ValueError, match="max_length"):
        collate(_samples(), pad_token_id=0, max_length=0)


def test_samples_round_trip_through_json() -> None:
    s = TrainSample.from_episode(_episode(), advantage=1.0)
    assert TrainSample.model_validate_json(s.model_dump_json()) == s


def test_batch_to_loss_end_to_end_on_the_tiny_model() -> None:
    model = tiny_model(seed=2)
    ep = _episode()
    samples = [TrainSample.from_episode(ep, a) for a in (1.0, -1.0)]
    b = collate(samples, pad_token_id=TOK.pad_token_id)
    lp = token_logprobs(model, b.input_ids, b.attention_mask)
    lp.retain_grad()
    out = GRPOLoss()(lp, lp.detach(), b.advantages, b.loss_mask, sample_weight=b.sample_weight)
    out.loss.backward()
    assert lp.grad is not None
    assert torch.equal(lp.grad[b.loss_mask == 0], torch.zeros(int((b.loss_mask == 0).sum())))
    assert int(out.tokens) == b.num_loss_tokens
