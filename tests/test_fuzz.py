"""Fuzz every implemented operation (Assistants, files, uploads, vector stores) with schemathesis,
from OpenAI's own spec.

The spec documents only 200 and 429, so status-code conformance is not checked. What is: no
request, however malformed, gets a 5xx (the SDK would retry it and duplicate writes), and every
4xx comes in OpenAI's error shape.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.harness.openapi_spec import load_spec, requires_spec

pytestmark = requires_spec
# What this server implements: the Assistants API and the files and vector stores it uses.
IMPLEMENTED_PATHS = re.compile(r"^/(assistants|threads|files|uploads|vector_stores)(/|$)")


@pytest.fixture(scope="module")
def api_schema(stack_url: str) -> schemathesis.BaseSchema:
    # Only the fuzzing phase, a few cases per operation: the coverage and examples phases
    # multiply the cases by the spec's size and would take minutes for no extra insight here.
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": False},
                "stateful": {"enabled": False},
                "fuzzing": {"enabled": True},
            }
        }
    )
    # The paths are chosen in the spec itself: schema.include() narrows get_all_operations(),
    # but from_fixture's parametrization still walks every operation of the spec.
    spec = load_spec()
    spec = {**spec, "paths": {path: item for path, item in spec["paths"].items() if IMPLEMENTED_PATHS.match(path)}}
    return schemathesis.openapi.from_dict(spec, config=config)


fuzzed = schemathesis.pytest.from_fixture("api_schema")


@fuzzed.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error(case: schemathesis.Case, stack_url: str) -> None:
    response = case.call(base_url=f"{stack_url}/v1", headers={"Authorization": "Bearer sk-fuzz"}, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    if 400 <= response.status_code < 500:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert error["message"] and error["type"]
