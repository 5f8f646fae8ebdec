r"""Train on thor's environments with TRL's ``GRPOTrainer``, for users who live in TRL.

TRL 1.16 lets a ``rollout_func(prompts, trainer)`` replace its generation: it returns
``prompt_ids``, ``completion_ids`` and ``logprobs`` per completion, may return ``env_mask`` (1 on
tokens the model wrote, 0 on tokens the environment inserted; TRL keeps the 0s out of the loss),
and any other field reaches the reward functions as a keyword argument. :func:`make_rollout_func`
builds one that runs thor's :class:`~thor.agents.rollout.RolloutEngine` (the TIR agent, the
sandbox, THOR's self-correction if asked, the env's reward), generating with
``HFPolicy.from_model(trainer.model)``, so TRL trains on multi-turn tool-integrated episodes with
the tool outputs masked. :func:`thor_reward_func` hands TRL the reward the env computed.

Example:
    >>> from trl import GRPOConfig, GRPOTrainer  # doctest: +SKIP
    >>> from thor.algos.trl_adapter import make_rollout_func, thor_reward_func, trl_dataset
    >>> from thor.data.loaders import load_problems  # doctest: +SKIP
    >>> problems = load_problems("synthetic_train", limit=64)  # doctest: +SKIP
    >>> rollout = make_rollout_func({"agent": "tir", "env": {"reward": "thor"}}, problems)  # doctest: +SKIP
    >>> trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=thor_reward_func,
    ...     args=GRPOConfig(num_generations=8, ...), train_dataset=trl_dataset(problems),
    ...     rollout_func=rollout)  # doctest: +SKIP
    >>> trainer.train(); rollout.close()  # doctest: +SKIP

Limits (TRL's side of the contract, and what thor does about it):

- TRL passes the rollout function only the prompts, so each prompt is looked up in ``problems``
  (by its text) for the gold answer and id; :func:`trl_dataset` makes a dataset whose prompts are
  the problem texts. A conversational prompt's last user message is taken as the problem: the
  env renders its own system prompt and chat template, as in thor's own trainer.
- Generation runs on the trainer's model through thor's HF decode loop in this process (no vLLM
  sync: ``use_vllm`` with a ``rollout_func`` only syncs TRL's own engine). Pass ``policy=`` to
  generate with something else (e.g. a :class:`~thor.agents.backends.vllm_engine.VLLMPolicy`
  whose weights you push yourself).
- thor's backends leave the EOS token out of ``token_ids``; a terminated episode (an answer, not a
  budget cut) gets the tokenizer's EOS appended so TRL counts it as finished and trains the stop.
  Its sampling logprob, and those of tool-output tokens, are 0.0 placeholders (TRL uses sampling
  logprobs only for vLLM importance sampling).
- Only trajectory-level GRPO: THOR's step-level samples, dynamic sampling and the exclusion of
  episodes with failed calls are thor trainer features (:mod:`thor.algos.loop`), not TRL's.
- ``max_completion_length`` of TRL does not bound thor's episodes: set
  ``max_response_tokens`` in the rollout config.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from thor.agents.config import RolloutConfig
from thor.config import validate_config
from thor.types import Episode, Problem

__all__ = [
    "ThorRolloutFunc",
    "episode_fields",
    "make_rollout_func",
    "thor_reward_func",
    "trl_dataset",
]

PolicySource = Any
"""A Policy, or a function ``trainer -> Policy``; ``None``: HFPolicy over ``trainer.model``."""


def trl_dataset(problems: Sequence[Problem]) -> Any:
    """A ``datasets.Dataset`` for ``GRPOTrainer``: ``prompt`` (the problem text), ``problem_id``, ``answer``."""
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": p.problem, "problem_id": p.id, "answer": p.answer or ""} for p in problems]
    )


def _problem_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # conversational: the last user message is the problem
        for msg in reversed(prompt):
            if isinstance(msg, dict) and msg.get("role") == "user":
                content = msg.get("content")
                if isinstance(content, str):
                    return content
    raise ValueError(f"cannot read a problem from the prompt {prompt!r:.120}")


def episode_fields(episode: Episode, eos_token_id: int | None) -> dict[str, Any]:
    """One episode as TRL's rollout fields: prompt and completion ids, logprobs, env mask, reward.

    Raises:
        ValueError: the episode lacks token ids (a text-only policy).
    """
    if episode.prompt_token_ids is None:
        raise ValueError(f"episode {episode.id}: no prompt token ids")
    ids, mask = episode.token_sequence()
    logprobs: list[float] = []
    for t in episode.turns:
        n = len(t.token_ids or [])
        lps = list(t.logprobs) if t.logprobs is not None and len(t.logprobs) == n else [0.0] * n
        logprobs += lps + [0.0] * len(t.observation_token_ids or [])
    if eos_token_id is not None and (episode.terminated or not ids):
        ids, mask, logprobs = [*ids, eos_token_id], [*mask, 1], [*logprobs, 0.0]
    return {
        "prompt_ids": list(episode.prompt_token_ids),
        "completion_ids": ids,
        "logprobs": logprobs,
        "env_mask": mask,
        "thor_reward": float(episode.reward or 0.0),
        "thor_tool_calls": episode.num_calls,
        "thor_failed_calls": episode.num_failed_calls,
        "thor_stop_reason": episode.stop_reason,
    }


class ThorRolloutFunc:
    """A TRL ``rollout_func`` that runs thor's rollout engine (see the module docstring).

    Args:
        config: the rollout config (agent, reward, budgets...), a :class:`RolloutConfig` or mapping.
        problems: the training problems; each prompt TRL passes is looked up here by its text.
            ``None``: problems have no gold answer (rewards that need none).
        policy: generate with this policy (or ``trainer -> policy``) instead of the trainer's model.
        tokenizer: default: ``trainer.processing_class``.
        sandbox: the sandbox sessions come from (default: the config's shared one).
        seed: base seed; each call is seeded from it, the trainer's step and a call counter.
    """

    def __init__(
        self,
        config: RolloutConfig | dict[str, Any] | None = None,
        problems: Sequence[Problem] | None = None,
        *,
        policy: PolicySource = None,
        tokenizer: Any = None,
        sandbox: Any = None,
        seed: int = 0,
    ) -> None:
        self.config = validate_config(RolloutConfig, config or {})
        self.problems = {p.problem: p for p in problems} if problems is not None else None
        self._policy_source = policy
        self._tokenizer = tokenizer
        self._sandbox = sandbox
        self.seed = seed
        self.calls = 0
        self.episodes: list[Episode] = []
        """The episodes of the latest call (for inspection and logging)."""
        self._engine: Any = None
        self._engine_key: int | None = None
        self._lock = threading.Lock()

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        from thor.agents.rollout import RolloutTask

        with self._lock:
            engine, policy = self._engine_for(trainer)
            seen: dict[str, int] = {}
            tasks = []
            for prompt in prompts:
                problem = self._problem(_problem_text(prompt))
                k = seen[problem.id] = (
                    seen.get(problem.id, -1) + 1
                )  # TRL repeats each prompt G times
                tasks.append(RolloutTask(problem=problem, sample=k))
            step = int(getattr(getattr(trainer, "state", None), "global_step", 0) or 0)
            seed = self.seed + 1_000_003 * step + 7919 * self.calls
            self.calls += 1
            self.episodes = engine.run(tasks, seed=seed)
            eos = _eos_id(policy, trainer, self._tokenizer)
            rows = [episode_fields(ep, eos) for ep in self.episodes]
            return {key: [r[key] for r in rows] for key in rows[0]} if rows else {}

    def _problem(self, text: str) -> Problem:
        if self.problems is None:
            digest = hashlib.sha1(text.encode()).hexdigest()[:12]
            return Problem(id=f"trl-{digest}", problem=text)
        try:
            return self.problems[text]
        except KeyError:
            raise ValueError(
                f"prompt {text[:80]!r} is not one of the {len(self.problems)} problems given to "
                "make_rollout_func (build the dataset with trl_dataset(problems))"
            ) from None

    def _engine_for(self, trainer: Any) -> tuple[Any, Any]:
        from thor.agents.rollout import RolloutEngine

        policy = self._policy_source
        if policy is None:
            from thor.agents.backends.hf import HFPolicy

            model = trainer.model
            accelerator = getattr(trainer, "accelerator", None)
            if accelerator is not None:
                model = accelerator.unwrap_model(model)
            tokenizer = self._tokenizer or trainer.processing_class
            key = id(model)
            if self._engine is None or self._engine_key != key:
                self._close_engine()
                policy = HFPolicy.from_model(model, tokenizer, name="trl-policy")
                self._engine = RolloutEngine(policy, self.config, sandbox=self._sandbox)
                self._engine_key = key
            return self._engine, self._engine.policy
        if callable(policy) and not hasattr(policy, "generate"):
            policy = policy(trainer)
        if self._engine is None or self._engine.policy is not policy:
            self._close_engine()
            self._engine = RolloutEngine(policy, self.config, sandbox=self._sandbox)
        return self._engine, policy

    def _close_engine(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def close(self) -> None:
        """Stop the engine's worker threads and close kept snapshots (idempotent)."""
        with self._lock:
            self._close_engine()

    def __enter__(self) -> ThorRolloutFunc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _eos_id(policy: Any, trainer: Any, tokenizer: Any) -> int | None:
    tok = tokenizer or getattr(trainer, "processing_class", None)
    eos = getattr(tok, "eos_token_id", None)
    if isinstance(eos, int):
        return eos
    ids = sorted(getattr(policy, "eos_token_ids", ()) or ())
    return ids[0] if ids else None


def make_rollout_func(
    config: RolloutConfig | dict[str, Any] | None = None,
    problems: Sequence[Problem] | None = None,
    *,
    policy: PolicySource = None,
    tokenizer: Any = None,
    sandbox: Any = None,
    seed: int = 0,
) -> ThorRolloutFunc:
    """A TRL ``rollout_func`` over thor's envs (see :class:`ThorRolloutFunc`); ``close()`` it after."""
    return ThorRolloutFunc(
        config, problems, policy=policy, tokenizer=tokenizer, sandbox=sandbox, seed=seed
    )


def thor_reward_func(
    prompts: list[Any] | None = None,
    completions: list[Any] | None = None,
    thor_reward: list[float] | None = None,
    log_metric: Callable[[str, float], None] | None = None,
    thor_tool_calls: list[int] | None = None,
    thor_failed_calls: list[int] | None = None,
    **kwargs: Any,
) -> list[float]:
    """TRL reward function: the reward thor's env gave each episode (``reward_funcs=thor_reward_func``).

    Also logs the mean tool calls per episode and the execution success rate as TRL metrics.

    Raises:
        ValueError: no ``thor_reward`` field (the trainer does not use :func:`make_rollout_func`).
    """
    if thor_reward is None:
        raise ValueError("thor_reward_func needs the rollout_func from thor.algos.trl_adapter")
    if log_metric is not None and thor_tool_calls is not None and thor_failed_calls is not None:
        calls = sum(thor_tool_calls)
        log_metric("thor/tool_calls", calls / max(1, len(thor_tool_calls)))
        if calls:
            log_metric("thor/exec_success", 1.0 - sum(thor_failed_calls) / calls)
    return [float(r) for r in thor_reward]


thor_reward_func.__name__ = "thor_reward"
