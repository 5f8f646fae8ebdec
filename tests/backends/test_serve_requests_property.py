"""Property: any JSON body sent to ``thor serve`` gets a response or a 4xx naming the problem,
never a server error (checked in-process over the parser, the batcher and the response shapes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thor.agents.backends.openai_api import stream_chunks
from thor.agents.backends.server import PolicyServer
from thor.serving import RequestError
from thor.testing import ScriptedPolicy, tiny_tokenizer

pytestmark = pytest.mark.timeout(300)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=12,
)
SMALL_INTS = st.integers(-3, 600)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["toy", "other", None]) | JSON,
    "prompt": st.text(max_size=30)
    | st.lists(SMALL_INTS, max_size=5)
    | st.lists(st.text(max_size=5) | st.lists(SMALL_INTS, max_size=3), max_size=3)
    | JSON,
    "messages": st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "system", "assistant", "tool", 3]), "content": JSON}
        ),
        max_size=3,
    )
    | JSON,
    "max_tokens": st.integers(-2, 8) | JSON,
    "max_completion_tokens": st.integers(-2, 8) | JSON,
    "temperature": st.floats(-1, 3) | JSON,
    "top_p": st.floats(-0.5, 1.5) | JSON,
    "top_k": st.integers(-2, 50) | JSON,
    "n": st.integers(-1, 4) | JSON,
    "best_of": st.integers(0, 4) | JSON,
    "seed": st.integers(-(2**65), 2**65) | JSON,
    "stop": st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=3) | JSON,
    "logprobs": st.integers(-1, 25) | st.booleans() | JSON,
    "top_logprobs": st.integers(-1, 25) | JSON,
    "stream": st.booleans() | JSON,
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}) | JSON,
    "echo": st.booleans() | JSON,
    "return_tokens_as_token_ids": st.booleans() | JSON,
    "include_stop_str_in_output": st.booleans() | JSON,
    "response_format": st.just({"type": "text"}) | JSON,
}
BODIES = st.fixed_dictionaries({}, optional=FIELDS) | JSON


@pytest.fixture(scope="module")
def server() -> Iterator[PolicyServer]:
    policy = ScriptedPolicy(lambda p: "the answer is 4", tokenizer=tiny_tokenizer())
    with PolicyServer(policy, port=0, model_name="toy", batch_wait_s=0) as srv:
        yield srv


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["completion", "chat"]), body=BODIES)
def test_any_body_gets_a_response_or_a_4xx(server: PolicyServer, kind: str, body: Any) -> None:
    from thor.agents.backends.openai_api import response

    try:
        req, results = server.respond(kind, body)
    except RequestError as err:
        assert 400 <= err.status < 500 and err.message
        return
    out = response(req, results, server.model)
    assert len(out["choices"]) == len(req.prompts) * req.n
    chunks = list(stream_chunks(req, results, server.model))
    assert chunks
