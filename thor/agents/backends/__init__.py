"""Policy backends: one batch-first protocol over transformers, vLLM and OpenAI-compatible servers.

Registered in :data:`thor.POLICIES` (this module is imported lazily, on the first lookup, and is
light: torch, transformers and vllm load only when a policy is built):

- ``hf``: :class:`~thor.agents.backends.hf.HFPolicy` (transformers, CPU or GPU; a model directory,
  a GGUF file, or the embedded SmolLM2-135M-Instruct; a prefix cache across calls);
- ``vllm``: :class:`~thor.agents.backends.vllm_engine.VLLMPolicy` (the offline engine, prefix
  caching, ``update_weights``; needs vllm, e.g. the ``.venv-vllm`` that scripts/setup_vllm.sh makes);
- ``openai``: :class:`~thor.agents.backends.openai_client.OpenAIPolicy` (any OpenAI-compatible
  completions server, ``thor serve`` included).

Example:
    >>> import thor
    >>> sorted(thor.POLICIES.names())
    ['hf', 'openai', 'vllm']
    >>> thor.POLICIES.config("hf").model
    'embedded'
"""

from __future__ import annotations

from typing import Any

from thor.agents.backends.base import Policy, Prompt, StopChecker, apply_stops
from thor.agents.backends.embedded import embedded_model_dir
from thor.agents.backends.hf import HFPolicy, HFPolicyConfig
from thor.agents.backends.openai_client import OpenAIPolicy, OpenAIPolicyConfig
from thor.agents.backends.vllm_engine import VLLMPolicy, VLLMPolicyConfig
from thor.registries import POLICIES

__all__ = [
    "HFPolicy",
    "HFPolicyConfig",
    "OpenAIPolicy",
    "OpenAIPolicyConfig",
    "Policy",
    "Prompt",
    "StopChecker",
    "VLLMPolicy",
    "VLLMPolicyConfig",
    "apply_stops",
    "embedded_model_dir",
    "make_policy",
]

POLICIES.register(
    "hf",
    config=HFPolicyConfig,
    factory=HFPolicy,
    description="transformers: a local model directory, a GGUF file, or the embedded model",
)
POLICIES.register(
    "vllm",
    config=VLLMPolicyConfig,
    factory=VLLMPolicy,
    description="the vLLM offline engine (prefix caching, update_weights)",
)
POLICIES.register(
    "openai",
    config=OpenAIPolicyConfig,
    factory=OpenAIPolicy,
    description="an OpenAI-compatible completions server (vLLM serve, thor serve, ...)",
)


def make_policy(backend: str, /, **kwargs: Any) -> Policy:
    """Build a registered policy backend by name, validating ``kwargs`` against its config.

    Example:
        >>> make_policy("hf", modle="embedded")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        thor.errors.ConfigError: HFPolicyConfig: unknown field 'modle' (did you mean 'model'?)
    """
    policy: Policy = POLICIES.make(backend, **kwargs)
    return policy
