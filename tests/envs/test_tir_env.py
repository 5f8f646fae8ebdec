"""TIREnv against the real local sandbox (isolated) and the real verifier."""

from __future__ import annotations

import gc
import os

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import thor
from thor.envs import TIREnv, TIREnvConfig
from thor.errors import ConfigError, UnknownNameError
from thor.types import Episode, Turn

FENCE = "```"
pytestmark = pytest.mark.timeout(120)


def code(src: str, before: str = "Let me compute.\n") -> str:
    return f"{before}{FENCE}python\n{src}\n{FENCE}"


@pytest.fixture
def env():
    e = thor.make("thor/MathTIR-v0").unwrapped
    yield e
    e.close()


def test_make_with_no_arguments_and_through_gymnasium() -> None:
    e1 = thor.make("thor/MathTIR-v0")
    e2 = gymnasium.make("thor/MathTIR-v0", max_rounds=2)
    try:
        # the same wrapped env either way: gymnasium's checker and order wrappers, with a spec
        assert type(e1) is type(e2) and e1.spec is not None and e1.spec.id == "thor/MathTIR-v0"
        assert isinstance(e1.unwrapped, TIREnv) and e1.unwrapped.config.dataset == "math_train"
        assert e2.unwrapped.config.max_rounds == 2
    finally:
        e1.close()
        e2.close()


def test_bad_kwargs_and_names() -> None:
    with pytest.raises(ConfigError, match=r"max_round.*did you mean 'max_rounds'"):
        thor.make("thor/MathTIR-v0", max_round=3)
    with pytest.raises(UnknownNameError, match="did you mean 'thor/MathTIR-v0'"):
        thor.make("thor/MathTR-v0")


def test_code_runs_state_persists_and_answer_is_rewarded(env: TIREnv) -> None:
    obs, info = env.reset(options={"problem": "What is 2^10 + 1?", "answer": "1025"})
    assert obs == "What is 2^10 + 1?"
    assert info["messages"][0]["role"] == "system" and "boxed" in info["messages"][0]["content"]
    obs, r, term, trunc, info = env.step(code("x = 2 ** 10\nprint(x)"))
    assert obs == f"\n{FENCE}output\n1024\n{FENCE}\n"
    assert (r, term, trunc) == (0.0, False, False)
    assert info["exec"].status == "ok" and info["round"] == 1 and info["rounds_left"] == 4
    obs, r, term, trunc, info = env.step(code("print(x + 1)", before="\nThen add one.\n"))
    assert "1025" in obs  # the interpreter kept x
    obs, r, term, trunc, info = env.step("So the answer is $\\boxed{1025}$.")
    assert (obs, r, term, trunc) == ("", 1.0, True, False)
    ep: Episode = info["episode"]
    assert ep.final_answer == "1025" and ep.reward == 1.0 and ep.num_calls == 2
    assert ep.stop_reason == "answer" and info["reward_terms"]


def test_wrong_answer_and_errors_are_data(env: TIREnv) -> None:
    env.reset(options={"problem": "1/0?", "answer": "7"})
    obs, *_, info = env.step(code("print(1/0)"))
    assert "ZeroDivisionError: division by zero" in obs and info["exec"].status == "error"
    _, r, term, _, info = env.step("\\boxed{8}")
    assert r == 0.0 and term and info["episode"].num_failed_calls == 1


def test_round_budget_truncates() -> None:
    env = thor.make("thor/MathTIR-v0", max_rounds=1).unwrapped
    try:
        env.reset(options={"problem": "p", "answer": "1"})
        env.step(code("print(1)"))
        obs, r, term, trunc, info = env.step(code("print(2)"))
        assert (term, trunc, info["stop_reason"]) == (False, True, "max_rounds")
        assert env.episode.num_calls == 1  # the second call never ran
        with pytest.raises(RuntimeError, match="reset"):
            env.step("more")
    finally:
        env.close()


def test_token_budget_counts_characters_or_tokens() -> None:
    env = thor.make("thor/MathTIR-v0", max_response_tokens=40).unwrapped
    try:
        env.reset(options={"problem": "p", "answer": "1"})
        _, _, term, trunc, info = env.step(code("print('y' * 30)"))
        assert trunc and not term and info["stop_reason"] == "max_tokens"
        # with token ids attached, budgets count tokens
        env.reset(options={"problem": "p", "answer": "1"})
        _, _, _, trunc, _ = env.act(Turn(text=code("print(1)"), token_ids=[1, 2, 3]))
        assert not trunc and env.tokens_used < 40
    finally:
        env.close()


def test_cot_env_never_runs_code() -> None:
    env = thor.make("thor/MathCoT-v0").unwrapped
    try:
        env.reset(options={"problem": "p", "answer": "3"})
        _, r, term, _, info = env.step(code("print(3)", before="\\boxed{3}\n"))
        assert term and r == 1.0 and info["episode"].num_calls == 0
    finally:
        env.close()


def test_reset_draws_problems_deterministically() -> None:
    env = thor.make("thor/MathTIR-v0", dataset="gsm8k", dataset_limit=50).unwrapped
    try:
        a, _ = env.reset(seed=3)
        b, _ = env.reset(seed=3)
        assert a == b
        c, info = env.reset(options={"index": 7})
        assert info["problem_id"] == "gsm8k-test-7"
    finally:
        env.close()


def test_fork_branches_the_interpreter(env: TIREnv) -> None:
    env.reset(options={"problem": "p", "answer": "1"})
    env.step(code("import os\nsecret = os.urandom(8).hex()\nprint(secret)"))
    secret = env.episode.turns[-1].result.stdout.strip()
    twin = env.fork()
    try:
        obs, *_ = twin.step(code("print(secret)\nsecret = 'changed'"))
        assert secret in obs
        obs, *_ = env.step(code("print(secret)"))
        assert secret in obs  # the parent is unchanged by the branch
        assert len(twin.episode.turns) == 2 and len(env.episode.turns) == 2
        assert (
            twin.episode.turns[1].text != env.episode.turns[1].text
            or twin.episode is not env.episode
        )
    finally:
        twin.close()
    obs, *_ = env.step(code("print(secret)"))
    assert secret in obs  # closing the fork leaves the parent working


def test_check_env_passes() -> None:
    env = thor.make("thor/MathTIR-v0", dataset="gsm8k", dataset_limit=20).unwrapped
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_render_ansi() -> None:
    env = TIREnv(TIREnvConfig(), render_mode="ansi")
    try:
        env.reset(options={"problem": "Q?", "answer": "1"})
        env.step(code("print(5)"))
        assert "Q?" in env.render() and "5" in env.render()
    finally:
        env.close()


def test_sync_and_async_vector_envs() -> None:
    for mode in ("sync", "async"):
        venv = gymnasium.make_vec(
            "thor/MathTIR-v0",
            num_envs=2,
            vectorization_mode=mode,
            dataset="gsm8k",
            dataset_limit=10,
        )
        try:
            obs, _ = venv.reset(seed=0)
            assert len(obs) == 2 and all(isinstance(o, str) and o for o in obs)
            obs, rew, term, trunc, _ = venv.step((code("print(6*7)"), "\\boxed{0}"))
            assert "42" in obs[0] and not term[0] and term[1]
        finally:
            venv.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_leaks_over_many_episodes() -> None:
    env = thor.make("thor/MathTIR-v0").unwrapped
    try:
        env.reset(options={"problem": "warm", "answer": "1"})
        env.step(code("print(1)"))
        env.step("\\boxed{1}")
        gc.collect()
        fds = _open_fds()
        for i in range(1000):
            env.reset(options={"problem": f"p{i}", "answer": str(i)})
            env.step(code(f"print({i})"))
            if i % 2:
                env.step(f"\\boxed{{{i}}}")  # terminated episodes close their session...
            # ...and the others are closed by the next reset()
        gc.collect()
        assert _open_fds() <= fds + 2
    finally:
        env.close()


def test_gymnasium_make_in_a_fresh_interpreter_with_the_module_prefixed_id() -> None:
    """gymnasium 1.x has no plugin entry points (removed in 1.0); its module-prefixed id imports
    thor, which registers its envs, so no `import thor` is needed."""
    import subprocess
    import sys

    code = (
        "import gymnasium, sys\n"
        "assert 'thor' not in sys.modules\n"
        "env = gymnasium.make('thor:thor/MathTIR-v0', max_rounds=2)\n"
        "print(env.spec.id, env.unwrapped.config.max_rounds)\n"
        "env2 = gymnasium.make('thor/MathCoT-v0')  # after that, plain ids work too\n"
        "print(env2.spec.id)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["thor/MathTIR-v0", "2", "thor/MathCoT-v0"]


def test_fork_copies_the_random_state_unless_reseeded() -> None:
    env = thor.make("thor/MathTIR-v0").unwrapped
    try:
        env.reset(options={"problem": "draw", "answer": "0"})
        env.step(code("import random\nrandom.seed(1)\nprint('seeded')"))
        same, fresh = env.fork(), env.fork(reseed=True)
        draw = code("print(random.random())", before="\nDraw.\n")
        try:
            parent = env.step(draw)[0]
            assert same.step(draw)[0] == parent  # a fork is a copy: the same next draw
            assert fresh.step(draw)[0] != parent  # reseeded: its own stream
        finally:
            same.close()
            fresh.close()
    finally:
        env.close()


def test_a_box_printed_by_code_is_not_the_models_answer() -> None:
    env = thor.make("thor/MathTIR-v0", max_response_tokens=10_000).unwrapped
    try:
        env.reset(options={"problem": "2^10?", "answer": "1024"})
        env.step(code("print(chr(92) + 'boxed{' + str(2 ** 10) + '}')"))  # prints \\boxed{1024}
        _, reward, term, _, info = env.step("I am not sure.")
        assert term and info["episode"].final_answer is None and reward == 0.0
    finally:
        env.close()
