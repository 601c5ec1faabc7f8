"""template.yaml: what SAM turns it into, and that what it names exists.

`make test` runs `sam validate --lint` and cfn-lint first; these tests check what a linter
cannot: that SAM's transform wires every runs route to Lambda's response-streaming invocation and
no other route, that the authorizer guards every route but /health, that the gateway's own errors
are in OpenAI's shape, and that every function's handler, the table and the state machine are
what the code expects.

The transform runs samtranslator, which lives in the tools virtualenv (.venv-tools, or the one
holding $SAM_CLI), in a subprocess: the app's virtualenv does not have it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from assistants_core.blobs import UPLOAD_PART_TAG
from assistants_core.repository import EXPIRY_INDEX
from assistants_core.request_size import TOO_LARGE_MESSAGE
from local import template as cfn

ROOT = cfn.ROOT
LWA_LAYER = "arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:25"

# Every route of the API and the function that serves it.
ROUTES: dict[tuple[str, str], str] = {
    ("/health", "get"): "AssistantsFunction",
    ("/v1/assistants", "get"): "AssistantsFunction",
    ("/v1/assistants", "post"): "AssistantsFunction",
    ("/v1/assistants/{assistant_id}", "get"): "AssistantsFunction",
    ("/v1/assistants/{assistant_id}", "post"): "AssistantsFunction",
    ("/v1/assistants/{assistant_id}", "delete"): "AssistantsFunction",
    ("/v1/models", "get"): "ModelsFunction",
    ("/v1/models/{model+}", "get"): "ModelsFunction",
    ("/v1/threads", "post"): "ThreadsFunction",
    ("/v1/threads/{thread_id}", "get"): "ThreadsFunction",
    ("/v1/threads/{thread_id}", "post"): "ThreadsFunction",
    ("/v1/threads/{thread_id}", "delete"): "ThreadsFunction",
    ("/v1/threads/{thread_id}/messages", "get"): "MessagesFunction",
    ("/v1/threads/{thread_id}/messages", "post"): "MessagesFunction",
    ("/v1/threads/{thread_id}/messages/{message_id}", "get"): "MessagesFunction",
    ("/v1/threads/{thread_id}/messages/{message_id}", "post"): "MessagesFunction",
    ("/v1/threads/{thread_id}/messages/{message_id}", "delete"): "MessagesFunction",
    ("/v1/threads/runs", "post"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs", "get"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs", "post"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs/{run_id}", "get"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs/{run_id}", "post"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs/{run_id}/cancel", "post"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", "post"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs/{run_id}/steps", "get"): "RunsFunction",
    ("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}", "get"): "RunsFunction",
    ("/v1/files", "get"): "FilesFunction",
    ("/v1/files", "post"): "FilesFunction",
    ("/v1/files/{file_id}", "get"): "FilesFunction",
    ("/v1/files/{file_id}", "delete"): "FilesFunction",
    ("/v1/files/{file_id}/content", "get"): "FilesFunction",
    ("/v1/uploads", "post"): "FilesFunction",
    ("/v1/uploads/{upload_id}/parts", "post"): "FilesFunction",
    ("/v1/uploads/{upload_id}/complete", "post"): "FilesFunction",
    ("/v1/uploads/{upload_id}/cancel", "post"): "FilesFunction",
    ("/v1/vector_stores", "get"): "VectorStoresFunction",
    ("/v1/vector_stores", "post"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}", "get"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}", "post"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}", "delete"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/search", "post"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/files", "get"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/files", "post"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/files/{file_id}", "get"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/files/{file_id}", "post"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/files/{file_id}", "delete"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/files/{file_id}/content", "get"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/file_batches", "post"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}", "get"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel", "post"): "VectorStoresFunction",
    ("/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files", "get"): "VectorStoresFunction",
}
STREAMING_FUNCTIONS = {"RunsFunction"}
# Routes whose body may be a file: their authorizer also checks the request's size.
UPLOAD_ROUTES = {("/v1/files", "post"), ("/v1/uploads/{upload_id}/parts", "post")}

INVALID_API_KEY = {
    "error": {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}

# Run in the tools virtualenv: print SAM's CloudFormation translation of argv[1] as JSON.
TRANSFORM = r"""
import json, os, sys
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:  # every managed policy the template uses is named by ARN
    def load(self):
        return {}

with open(sys.argv[1]) as handle:
    template = yaml_parse(handle.read())
for resource in template.get("Resources", {}).values():
    props = resource.get("Properties") or {}
    for key in ("CodeUri", "ContentUri", "DefinitionUri"):  # as `sam package` would upload them
        if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
            props[key] = "s3://local-build/" + props[key]
parameters = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
json.dump(transform(template, parameters, NoManagedPolicies()), sys.stdout)
"""


def _tools_python() -> Path | None:
    candidates = []
    if os.environ.get("SAM_CLI"):
        candidates.append(Path(os.environ["SAM_CLI"]).parent / "python")
    candidates.append(ROOT / ".venv-tools" / "bin" / "python")
    for python in candidates:
        if (
            python.exists()
            and subprocess.run([python, "-c", "import samtranslator"], capture_output=True).returncode == 0
        ):
            return python
    return None


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    python = _tools_python()
    if python is None:
        pytest.skip(
            "samtranslator not found: `make .venv-tools/.installed` (or set SAM_CLI to a sam whose virtualenv has it)"
        )
    result = subprocess.run(
        [python, "-c", TRANSFORM, str(cfn.TEMPLATE_PATH)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn.load_template()


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def _swagger(transformed: dict[str, Any]) -> dict[str, Any]:
    (api,) = _of_type(transformed, "AWS::ApiGateway::RestApi").values()
    return api["Properties"]["Body"]


def _integrations(transformed: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation["x-amazon-apigateway-integration"]
        for path, item in _swagger(transformed)["paths"].items()
        for method, operation in item.items()
    }


def _uri(integration: dict[str, Any]) -> str:
    uri = integration["uri"]
    return uri["Fn::Sub"] if isinstance(uri, dict) else uri


def _target(integration: dict[str, Any]) -> str:
    match = re.search(r"\$\{(\w+)\.Arn\}", _uri(integration))
    assert match, integration
    return match.group(1)


# ------------------------------------------------------------------ the transformed template


def test_the_api_has_exactly_the_expected_routes(transformed: dict[str, Any]) -> None:
    targets = {route: _target(integration) for route, integration in _integrations(transformed).items()}
    assert targets == ROUTES


def test_every_runs_route_streams(transformed: dict[str, Any]) -> None:
    streamed = 0
    for route, integration in _integrations(transformed).items():
        if ROUTES[route] not in STREAMING_FUNCTIONS:
            continue
        streamed += 1
        assert integration["type"] == "aws_proxy", route
        assert _uri(integration).endswith("/2021-11-15/functions/${RunsFunction.Arn}/response-streaming-invocations"), (
            route
        )
        assert integration.get("responseTransferMode") == "STREAM", route
        # a stream may outlive REST's default 29 s integration timeout (streaming allows 15 min)
        assert integration.get("timeoutInMillis", 29_000) > 29_000, route
    assert streamed == 9


def test_no_other_route_streams(transformed: dict[str, Any]) -> None:
    buffered = 0
    for route, integration in _integrations(transformed).items():
        if ROUTES[route] in STREAMING_FUNCTIONS:
            continue
        buffered += 1
        assert "response-streaming" not in _uri(integration), route
        assert _uri(integration).endswith(f"/2015-03-31/functions/${{{ROUTES[route]}.Arn}}/invocations"), route
        assert "responseTransferMode" not in integration, route
    assert buffered == len(ROUTES) - 9


def test_the_authorizer_guards_every_route_but_health(transformed: dict[str, Any]) -> None:
    swagger = _swagger(transformed)
    for path, item in swagger["paths"].items():
        for method, operation in item.items():
            if (path, method) == ("/health", "get"):
                expected = [{"NONE": []}]
            elif (path, method) in UPLOAD_ROUTES:
                expected = [{"UploadAuthorizer": []}]
            else:
                expected = [{"ApiKeyAuthorizer": []}]
            assert operation["security"] == expected, (path, method)
    authorizer = swagger["securityDefinitions"]["ApiKeyAuthorizer"]
    assert authorizer["name"] == "Authorization" and authorizer["in"] == "header"
    settings = authorizer["x-amazon-apigateway-authorizer"]
    assert settings["type"] == "token"
    # Cached per key for AuthorizerCacheSeconds (the transform resolves it to the stack's value),
    # which is how long a revoked key may still work.
    assert settings["authorizerResultTtlInSeconds"] == 300
    cache = cfn.load_template()["Parameters"]["AuthorizerCacheSeconds"]
    assert (cache["Default"], cache["MinValue"], cache["MaxValue"]) == (300, 0, 3600)
    assert settings["authorizerUri"]["Fn::Sub"][1]["__FunctionArn__"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    # The upload routes' authorizer sees the headers (Content-Length) and is never cached.
    upload = swagger["securityDefinitions"]["UploadAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert upload["type"] == "request"
    assert upload["identitySource"] == "method.request.header.Authorization"
    assert upload["authorizerResultTtlInSeconds"] == 0
    assert upload["authorizerUri"]["Fn::Sub"][1]["__FunctionArn__"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}


def test_binary_bodies_reach_the_functions_as_they_were_sent(transformed: dict[str, Any]) -> None:
    assert _swagger(transformed)["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_gateway_errors_are_in_openai_shape(transformed: dict[str, Any]) -> None:
    responses = _swagger(transformed)["x-amazon-apigateway-gateway-responses"]

    def rendered(kind: str) -> dict[str, Any]:
        text = responses[kind]["responseTemplates"]["application/json"]
        # what API Gateway substitutes: messageString is already a quoted JSON string
        return json.loads(text.replace("$context.error.messageString", json.dumps("Forbidden")))

    assert responses["UNAUTHORIZED"]["statusCode"] == "401"
    assert rendered("UNAUTHORIZED") == INVALID_API_KEY
    # Only the upload authorizer denies: a body too large for Lambda. Over 10 MB, API Gateway itself.
    for kind in ("ACCESS_DENIED", "REQUEST_TOO_LARGE"):
        assert responses[kind]["statusCode"] == "413", kind
        assert rendered(kind)["error"] == {
            "message": TOO_LARGE_MESSAGE,
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }, kind
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"
    missing = rendered("MISSING_AUTHENTICATION_TOKEN")["error"]
    assert missing["message"].startswith("Invalid URL") and missing["type"] == "invalid_request_error"
    assert rendered("DEFAULT_4XX")["error"]["message"] == "Forbidden"
    assert rendered("DEFAULT_5XX")["error"]["type"] == "server_error"
    for kind in responses:
        assert set(rendered(kind)["error"]) == {"message", "type", "param", "code"}, kind


def test_function_layers(transformed: dict[str, Any]) -> None:
    functions = _of_type(transformed, "AWS::Lambda::Function")

    def layers(name: str) -> list[str]:
        return [
            layer["Ref"] if "Ref" in layer else layer["Fn::Sub"] for layer in functions[name]["Properties"]["Layers"]
        ]

    for name in functions:
        assert layers(name)[0].startswith("CoreLayer"), name
    assert len(layers("RunsFunction")) == 2 and layers("RunsFunction")[1] == LWA_LAYER
    # What calls a model (a turn, or an embedding) has litellm; only ingestion parses documents.
    for name in ("AgentStepFunction", "VectorStoresFunction"):
        assert len(layers(name)) == 2 and layers(name)[1].startswith("ModelsLayer"), name
    assert [layer[: len("ModelsLayer")] for layer in layers("IngestFunction")[1:]] == ["ModelsLayer", "IngestLayer"]
    for name in set(functions) - {"RunsFunction", "AgentStepFunction", "VectorStoresFunction", "IngestFunction"}:
        assert len(layers(name)) == 1, name


def test_the_state_machine(transformed: dict[str, Any]) -> None:
    machine = transformed["Resources"]["RunStateMachine"]
    assert machine["Type"] == "AWS::StepFunctions::StateMachine"
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"  # EXPRESS cannot wait for a task token
    assert props["DefinitionSubstitutions"] == {
        # The alias with SnapStart, $LATEST without (test_snapstart_on_the_agent_step).
        "AgentStepFunctionArn": {
            "Fn::If": [
                "UseSnapStart",
                {"Ref": "AgentStepFunctionAliaslive"},
                {"Fn::GetAtt": ["AgentStepFunction", "Arn"]},
            ]
        },
        "CodeInterpreterFunctionArn": {"Fn::GetAtt": ["CodeInterpreterFunction", "Arn"]},
        "RunFinalizerFunctionArn": {"Fn::GetAtt": ["RunFinalizerFunction", "Arn"]},
        "TableName": {"Ref": "AssistantsTable"},
    }
    statements = _statements(transformed, props["RoleArn"]["Fn::GetAtt"][0])
    invoked = {
        s["Resource"]["Fn::Sub"][1]["functionName"]["Ref"] for s in statements if "lambda:InvokeFunction" in _actions(s)
    }
    assert invoked == {"AgentStepFunction", "CodeInterpreterFunction", "RunFinalizerFunction"}
    assert any("dynamodb:UpdateItem" in _actions(s) for s in statements)  # updateItem.waitForTaskToken


def test_snapstart_on_the_agent_step(template: dict[str, Any], transformed: dict[str, Any]) -> None:
    """SnapStart where it pays (README, SnapStart), on published versions behind an alias that the
    state machine calls, and a parameter that turns it off."""
    parameter = template["Parameters"]["SnapStart"]
    assert (parameter["Default"], parameter["AllowedValues"]) == ("Enabled", ["Enabled", "Disabled"])
    assert template["Conditions"]["UseSnapStart"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "Enabled"]}
    resources = transformed["Resources"]
    with_snapstart = {
        name
        for name, res in resources.items()
        if res["Type"] == "AWS::Lambda::Function" and "SnapStart" in res["Properties"]
    }
    assert with_snapstart == {"AgentStepFunction"}
    agent = resources["AgentStepFunction"]["Properties"]
    assert agent["SnapStart"] == {"ApplyOn": {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}}
    alias = resources["AgentStepFunctionAliaslive"]
    assert alias["Type"] == "AWS::Lambda::Alias" and alias["Properties"]["Name"] == "live"
    version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert resources[version]["Type"] == "AWS::Lambda::Version"
    # A new version when a layer changes (the function's own code is a few lines): SAM hashes every
    # property, the layers' logical ids included, with AutoPublishAliasAllProperties.
    assert template["Resources"]["AgentStepFunction"]["Properties"]["AutoPublishAliasAllProperties"] is True
    # LambdaInvokePolicy grants function:<name>*, which covers the alias ARN (<name>:live).
    statements = _statements(transformed, resources["RunStateMachine"]["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    (invoke,) = [
        s
        for s in statements
        if "lambda:InvokeFunction" in _actions(s)
        and s["Resource"]["Fn::Sub"][1]["functionName"]["Ref"] == "AgentStepFunction"
    ]
    assert invoke["Resource"]["Fn::Sub"][0].endswith(":function:${functionName}*")
    # Nothing else invokes the agent step ($LATEST would never be restored from a snapshot).
    everything_else = json.dumps({k: v for k, v in resources.items() if k != "RunStateMachine"})
    assert '["AgentStepFunction", "Arn"]' not in everything_else


_READS = (
    "dynamodb:Get",
    "dynamodb:BatchGet",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:Describe",
    "dynamodb:ConditionCheck",
    "dynamodb:PartiQLSelect",
)


def test_the_authorizer_writes_only_the_last_use_of_api_keys(transformed: dict[str, Any]) -> None:
    from assistants_core.repository import API_KEYS_PK

    role = transformed["Resources"]["AuthorizerFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    writes = [s for s in _statements(transformed, role) if any(not a.startswith(_READS) for a in _actions(s))]
    assert writes == [
        {
            "Effect": "Allow",
            "Action": "dynamodb:UpdateItem",
            "Resource": {"Fn::GetAtt": ["AssistantsTable", "Arn"]},
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [API_KEYS_PK]}},
        }
    ]


def test_the_runs_function_drives_the_state_machine(transformed: dict[str, Any]) -> None:
    role = transformed["Resources"]["RunsFunction"]["Properties"]["Role"]["Fn::GetAtt"][0]
    by_action = {action: s["Resource"] for s in _statements(transformed, role) for action in _actions(s)}
    assert by_action["states:StartExecution"] == {"Ref": "RunStateMachine"}
    executions = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${RunStateMachine.Name}:*"
    for action in ("states:StopExecution", "states:DescribeExecution"):
        assert by_action[action] == {"Fn::Sub": executions}
    for action in ("states:SendTaskSuccess", "states:SendTaskFailure"):
        assert action in by_action
    env = transformed["Resources"]["RunsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["STATE_MACHINE_ARN"] == {"Ref": "RunStateMachine"}


def _statements(transformed: dict[str, Any], role: str) -> list[dict[str, Any]]:
    policies = transformed["Resources"][role]["Properties"].get("Policies", [])
    return [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


# ------------------------------------------------------------------ the template and the code


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_every_function_exists_with_its_handler() -> None:
    specs = cfn.functions()
    assert set(specs) == {
        "AuthorizerFunction",
        "AssistantsFunction",
        "ModelsFunction",
        "ThreadsFunction",
        "MessagesFunction",
        "RunsFunction",
        "AgentStepFunction",
        "CodeInterpreterFunction",
        "RunFinalizerFunction",
        "FilesFunction",
        "VectorStoresFunction",
        "IngestFunction",
        "ExpiryFunction",
    }
    for name, spec in specs.items():
        assert spec.code_uri.is_dir(), f"{name}: {spec.code_uri} is missing"
        if spec.handler.endswith(".sh"):
            continue  # the Lambda Web Adapter's script: see the next test
        module, _, attribute = spec.handler.rpartition(".")
        source = spec.code_uri / f"{module.replace('.', '/')}.py"
        assert source.is_file(), f"{name}: {source} is missing"
        assert attribute in _top_level_names(source), f"{name}: {source} defines no {attribute}"
        assert spec.environment["TABLE_NAME"] == {"Ref": "AssistantsTable"}, name


def test_web_adapter_functions_start_uvicorn_on_their_app() -> None:
    adapted = {name: spec for name, spec in cfn.functions().items() if spec.handler.endswith(".sh")}
    assert set(adapted) == {"RunsFunction"}
    for name, spec in adapted.items():
        script = spec.code_uri / spec.handler
        assert script.is_file(), f"{name}: {script} is missing"
        assert os.access(script, os.X_OK), f"{script} is not executable (chmod +x)"
        text = script.read_text()
        assert text.startswith("#!/bin/bash\n")
        exec_line = next(line for line in text.splitlines() if line.startswith("exec "))
        match = re.search(r"-m uvicorn .*--port \"\$\{?PORT[^ ]*\" (\w+):(\w+)$", exec_line)
        assert match, exec_line
        assert "--host 127.0.0.1" in exec_line
        module, attribute = match.groups()
        assert attribute in _top_level_names(spec.code_uri / f"{module}.py")
        assert "/opt/python" in text  # the layers' packages
        assert spec.environment["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
        assert spec.environment["AWS_LWA_INVOKE_MODE"] == "response_stream"
        assert spec.environment["PORT"] == "8080"


def test_globals(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.12" and glob["Architectures"] == ["arm64"]
    assert glob["Tracing"] == "Active"
    assert glob["Layers"] == [{"Ref": "CoreLayer"}]
    # the state machine references the functions: a global STATE_MACHINE_ARN would be a cycle
    assert "STATE_MACHINE_ARN" not in glob["Environment"]["Variables"]
    assert template["Resources"]["RunsFunction"]["Properties"]["Timeout"] == 900
    assert template["Resources"]["AgentStepFunction"]["Properties"]["Timeout"] == 900


def test_the_functions_and_the_layers_they_carry_share_one_architecture(template: dict[str, Any]) -> None:
    """arm64 everywhere: no function overrides the Globals' architecture, each layer is built for
    it (its Makefile reads BuildArchitecture, as layers/layer_build.py does here) and declares it,
    and the Lambda Web Adapter's layer is the one for it."""
    (arch,) = template["Globals"]["Function"]["Architectures"]
    for name, spec in cfn.resources(template, "AWS::Serverless::Function").items():
        assert "Architectures" not in spec["Properties"], name
    layers = cfn.resources(template, "AWS::Serverless::LayerVersion")
    assert set(layers) == {"CoreLayer", "ModelsLayer", "IngestLayer"}
    for name, spec in layers.items():
        assert spec["Properties"]["CompatibleArchitectures"] == [arch], name
        assert spec["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": arch}, name
        built_for = subprocess.run(
            [sys.executable, ROOT / "layers" / "layer_build.py", "architecture", cfn.TEMPLATE_PATH, name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert built_for.stdout.strip() == arch, name
    adapter = {"arm64": "LambdaAdapterLayerArm64", "x86_64": "LambdaAdapterLayerX86"}[arch]
    runs_layers = template["Resources"]["RunsFunction"]["Properties"]["Layers"]
    assert [layer["Fn::Sub"].split(":")[-2] for layer in runs_layers] == [adapter]


def test_the_table(template: dict[str, Any]) -> None:
    from assistants_core.repository import TTL_ATTRIBUTE

    props = template["Resources"]["AssistantsTable"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    assert cfn.table_definitions(template)["AssistantsTable"]["AttributeDefinitions"] == [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
        {"AttributeName": "expiry_kind", "AttributeType": "S"},
        {"AttributeName": "expires_at", "AttributeType": "N"},
    ]
    # The expiry sweep's index (services/expiry.py): sparse, keys only.
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == EXPIRY_INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "expiry_kind", "KeyType": "HASH"},
        {"AttributeName": "expires_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def test_the_files_bucket(template: dict[str, Any]) -> None:
    props = template["Resources"]["FilesBucket"]["Properties"]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    key, value = UPLOAD_PART_TAG.split("=")
    assert rules["ExpireUploadParts"]["TagFilters"] == [{"Key": key, "Value": value}]
    (statement,) = template["Resources"]["FilesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_chunk_index(template: dict[str, Any]) -> None:
    from assistants_core.vectors.layout import NON_FILTERABLE_KEYS

    props = template["Resources"]["ChunksIndex"]["Properties"]
    assert props["VectorBucketArn"] == {"Ref": "VectorBucket"}
    assert props["IndexName"] == {"Ref": "VectorIndexName"}
    assert props["Dimension"] == {"Ref": "EmbeddingDimensions"}
    assert props["DistanceMetric"] == "cosine" and props["DataType"] == "float32"
    assert set(props["MetadataConfiguration"]["NonFilterableMetadataKeys"]) == set(NON_FILTERABLE_KEYS)
    for name in ("VectorBucket", "ChunksIndex", "FilesBucket", "AssistantsTable"):  # data outlives the stack
        assert template["Resources"][name]["DeletionPolicy"] == "Retain", name
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["VECTOR_INDEX"] == {"Ref": "VectorIndexName"}
    # The bucket's name is the last part of its ARN (what !Ref gives).
    assert variables["VECTOR_BUCKET"] == {"Fn::Select": [1, {"Fn::Split": ["/", {"Ref": "VectorBucket"}]}]}


def _policy_actions(template: dict[str, Any], name: str) -> set[str]:
    (statement, *rest) = template["Resources"][name]["Properties"]["PolicyDocument"]["Statement"]
    return {a for s in (statement, *rest) for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


CHUNK_POLICIES = {
    "ChunksReadPolicy": {"s3vectors:QueryVectors", "s3vectors:GetVectors", "s3vectors:GetIndex"},
    "ChunksDeletePolicy": {"s3vectors:DeleteVectors"},
    "ChunksEditPolicy": {"s3vectors:PutVectors", "s3vectors:GetVectors", "s3vectors:DeleteVectors"},
    "ChunksIndexSetupPolicy": {
        "s3vectors:GetIndex",
        "s3vectors:UpdateIndexMode",
        "s3vectors:UpdateMetadataConfiguration",
    },
}
# Which function may do what to files and chunks: each only what its code does.
GRANTS = {
    "FilesFunction": {"FilesWritePolicy", "ChunksDeletePolicy"},
    "VectorStoresFunction": {"FilesReadPolicy", "FilesDeletePolicy", "ChunksReadPolicy", "ChunksEditPolicy"},
    "IngestFunction": {"FilesWritePolicy", "ChunksEditPolicy", "ChunksIndexSetupPolicy"},
    "ExpiryFunction": {"FilesDeletePolicy", "ChunksDeletePolicy"},
    "AgentStepFunction": {"FilesReadPolicy", "ChunksReadPolicy"},
    "CodeInterpreterFunction": {"FilesWritePolicy"},  # the run's files in, what the code wrote out
    "AssistantsFunction": {"ChunksDeletePolicy"},
    "ThreadsFunction": {"ChunksDeletePolicy"},
    "MessagesFunction": {"ChunksDeletePolicy"},
    "RunsFunction": {"ChunksDeletePolicy"},
}


def test_vector_and_file_permissions_are_least_privilege(template: dict[str, Any]) -> None:
    for name, actions in CHUNK_POLICIES.items():
        (statement,) = template["Resources"][name]["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Resource"] == {"Fn::Sub": "${VectorBucket}/index/*"}, name
        assert _policy_actions(template, name) == actions, name
    assert _policy_actions(template, "FilesDeletePolicy") == {"s3:DeleteObject"}
    for function, expected in GRANTS.items():
        policies = template["Resources"][function]["Properties"]["Policies"]
        granted = {p["Ref"] for p in policies if isinstance(p, dict) and "Ref" in p}
        assert (
            granted & (set(CHUNK_POLICIES) | {"FilesReadPolicy", "FilesDeletePolicy", "FilesWritePolicy"}) == expected
        ), function


def test_every_function_that_writes_the_table_may_follow_its_large_values(template: dict[str, Any]) -> None:
    """A doc too large for an item is in the files bucket (repository/content.py): any function
    that reads or writes the table must reach it, and nothing else."""
    from assistants_core.blobs import IDEMPOTENT_ANSWER_TAG, RUN_EVENT_TAG

    functions = {
        name: resource["Properties"]["Policies"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function" and "Policies" in resource["Properties"]
    }
    readers = {
        name
        for name, policies in functions.items()
        if any("DynamoDBCrudPolicy" in p or "DynamoDBReadPolicy" in p for p in policies)
    } - {"AuthorizerFunction"}  # it reads API key items only, which are never offloaded
    assert {
        "RunsFunction",
        "AgentStepFunction",
        "RunFinalizerFunction",
        "MessagesFunction",
        "ModelsFunction",
    } <= readers
    for name, policies in functions.items():
        assert ({"Ref": "ItemContentPolicy"} in policies) == (name in readers), name
    statements = template["Resources"]["ItemContentPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statements[0]["Resource"] == [
        {"Fn::Sub": "${FilesBucket.Arn}/t/*/items/*"},
        {"Fn::Sub": "${FilesBucket.Arn}/t/*/events/*"},
        {"Fn::Sub": "${FilesBucket.Arn}/t/*/answers/*"},
    ]
    rules = {
        rule["Id"]: rule
        for rule in template["Resources"]["FilesBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    key, value = RUN_EVENT_TAG.split("=")
    assert rules["ExpireRunEvents"]["TagFilters"] == [{"Key": key, "Value": value}]
    assert rules["ExpireRunEvents"]["ExpirationInDays"] >= 30  # the run log's TTL, and DynamoDB's lag deleting it
    key, value = IDEMPOTENT_ANSWER_TAG.split("=")
    assert rules["ExpireIdempotentAnswers"]["TagFilters"] == [{"Key": key, "Value": value}]
    assert rules["ExpireIdempotentAnswers"]["ExpirationInDays"] * 86400 > 86400  # the records' TTL


def test_every_api_function_may_count_a_request_against_its_key(template: dict[str, Any]) -> None:
    """The request rate limit is an UpdateItem by every function behind the API (create_app)."""
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        events = resource["Properties"].get("Events") or {}
        if any(event["Type"] == "Api" for event in events.values()):
            policies = resource["Properties"]["Policies"]
            assert any("DynamoDBCrudPolicy" in p for p in policies if isinstance(p, dict)), name


def test_ingestion_state_machine(template: dict[str, Any]) -> None:
    props = template["Resources"]["IngestStateMachine"]["Properties"]
    assert props["Type"] == "STANDARD"
    arns = {"IngestFunction": f"arn:aws:lambda:{cfn.REGION}:{cfn.ACCOUNT}:function:IngestFunction"}
    definition = json.loads(cfn.state_machine_definition("IngestStateMachine", cfn.Resolver({}, arns)))
    files = definition["States"][definition["StartAt"]]
    assert files["Type"] == "Map" and files["ItemsPath"] == "$.file_ids"
    states = files["ItemProcessor"]["States"]
    ingest = states[files["ItemProcessor"]["StartAt"]]
    assert ingest["Parameters"]["FunctionName"] == arns["IngestFunction"]
    (retry,) = ingest["Retry"]
    assert retry["ErrorEquals"] == ["States.ALL"] and retry["MaxAttempts"] >= 2 and retry["BackoffRate"] > 1
    (catch,) = ingest["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    failed = states[catch["Next"]]  # retries ran out: the file is marked failed, never left in progress
    assert failed["Parameters"]["Payload"]["action"] == "fail"
    # Each iteration ends with {}: a batch's outcomes stay far under a state's 256 KB of data.
    for name in (files["ItemProcessor"]["StartAt"], catch["Next"]):
        assert states[states[name]["Next"]] == {
            **states[states[name]["Next"]],
            "Type": "Pass",
            "Result": {},
            "End": True,
        }
    for name in ("AssistantsFunction", "ThreadsFunction", "MessagesFunction", "RunsFunction", "VectorStoresFunction"):
        function = template["Resources"][name]["Properties"]
        assert function["Environment"]["Variables"]["INGEST_STATE_MACHINE_ARN"] == {"Ref": "IngestStateMachine"}
        assert {"Ref": "StartIngestionPolicy"} in function["Policies"], name


def test_the_expiry_sweep_runs_hourly(template: dict[str, Any]) -> None:
    (event,) = template["Resources"]["ExpiryFunction"]["Properties"]["Events"].values()
    assert event == {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)"}}


def test_the_state_machine_definition(template: dict[str, Any]) -> None:
    props = template["Resources"]["RunStateMachine"]["Properties"]
    assert props["Type"] == "STANDARD"
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == {
        "AgentStepFunctionArn",
        "CodeInterpreterFunctionArn",
        "RunFinalizerFunctionArn",
        "TableName",
    }
    asl = (ROOT / props["DefinitionUri"]).read_text()
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", asl))
    assert used <= set(substitutions), f"the ASL uses undefined substitutions: {used - set(substitutions)}"
    resolver = cfn.planned_resolver(template)  # the template's conditions too (SnapStart's alias)
    definition = json.loads(cfn.state_machine_definition("RunStateMachine", resolver))
    agent = f"arn:aws:lambda:{cfn.REGION}:{cfn.ACCOUNT}:function:AgentStepFunction:live"
    assert {s.get("Parameters", {}).get("FunctionName") for s in definition["States"].values()} >= {agent}
    assert definition["StartAt"] in definition["States"]
    assert "${" not in json.dumps(definition)
    states = definition["States"]
    for state in states.values():  # every transition goes to a state that exists
        targets = [state.get("Next"), state.get("Default")] + [c["Next"] for c in state.get("Choices", [])]
        assert {t for t in targets if t} | {c["Next"] for c in state.get("Catch", [])} <= set(states)

    # The wait for tool outputs: a task token, 600 s (OpenAI's run expiry), then Expire.
    (waiting,) = [name for name, s in states.items() if str(s.get("Resource", "")).endswith(".waitForTaskToken")]
    wait = states[waiting]
    assert wait["TimeoutSeconds"] == 600
    catches = {error: c["Next"] for c in wait["Catch"] for error in c["ErrorEquals"]}
    assert catches == {
        "States.Timeout": "Expire",
        "DynamoDb.ConditionalCheckFailedException": "AgentStep",  # outputs came before the token
        "States.ALL": "MarkFailed",
    }
    for task in ("AgentStep", "RunCode"):  # no crash leaves a run in progress or its thread locked
        assert [c["Next"] for c in states[task]["Catch"]] == ["MarkFailed"], task
        assert states[task]["Catch"][0]["ErrorEquals"] == ["States.ALL"], task

    # Code the model wrote runs in a state of its own, then the next turn reads its outputs.
    routes = {c["StringEquals"]: c["Next"] for c in states["Route"]["Choices"]}
    assert routes["code"] == "RunCode" and routes["continue"] == "AgentStep"
    assert states["RunCode"]["Next"] == "Route"
    assert states["AgentStep"]["Parameters"]["Payload"]["after.$"] == "$.turn.status"

    # Every Lambda task retries Lambda's transient errors with backoff (AWS's advice); the
    # finalizer is idempotent, so it retries all of them.
    transient = {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    }
    lambda_tasks = [name for name, s in states.items() if s.get("Resource") == "arn:aws:states:::lambda:invoke"]
    assert set(lambda_tasks) == {"AgentStep", "RunCode", "Expire", "MarkFailed"}
    for name in lambda_tasks:
        assert states[name]["Retry"], name
        for retry in states[name]["Retry"]:
            assert retry["MaxAttempts"] >= 2 and retry["BackoffRate"] > 1 and retry["IntervalSeconds"] >= 1, name
    for name in ("Expire", "MarkFailed"):
        assert {e for r in states[name]["Retry"] for e in r["ErrorEquals"]} == transient, name
    assert states["Expire"]["Next"] == "Done" and states["MarkFailed"]["Next"] == "Failed"


def test_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    deploy = config["default"]["deploy"]["parameters"]
    assert deploy["stack_name"] == "serverless-assistants"
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True and deploy["confirm_changeset"] is True
    assert config["default"]["validate"]["parameters"]["lint"] is True


# What each function may do with AgentCore: the code function uses sessions, the threads
# function stops a deleted thread's; no other function may touch the code interpreter.
CODE_INTERPRETER_ACTIONS = {
    "CodeInterpreterFunction": {
        "bedrock-agentcore:StartCodeInterpreterSession",
        "bedrock-agentcore:InvokeCodeInterpreter",
        "bedrock-agentcore:StopCodeInterpreterSession",
    },
    "ThreadsFunction": {"bedrock-agentcore:StopCodeInterpreterSession"},
}


def test_code_interpreter_permissions_are_least_privilege(template: dict[str, Any]) -> None:
    built_in = {
        "Fn::Sub": "arn:${AWS::Partition}:bedrock-agentcore:${AWS::Region}:aws:code-interpreter/aws.codeinterpreter.v1"
    }
    for function in cfn.functions(template):
        policies = template["Resources"][function]["Properties"].get("Policies", [])
        actions: set[str] = set()
        for policy in policies:
            if isinstance(policy, dict) and "Ref" in policy and policy["Ref"] in template["Resources"]:
                document = template["Resources"][policy["Ref"]]["Properties"].get("PolicyDocument", {})
                for statement in document.get("Statement", []):
                    found = _actions(statement) if "Action" in statement else []  # not an Fn::If of one
                    if any(a.startswith("bedrock-agentcore:") for a in found):
                        # One interpreter: the built-in one, or the stack's VPC one.
                        assert statement["Resource"] == {
                            "Fn::If": [
                                "UseVpcCodeInterpreter",
                                {"Fn::GetAtt": ["VpcCodeInterpreter", "CodeInterpreterArn"]},
                                built_in,
                            ]
                        }, function
                    actions |= {a for a in found if a.startswith("bedrock-agentcore:")}
        assert actions == CODE_INTERPRETER_ACTIONS.get(function, set()), function
    for function in CODE_INTERPRETER_ACTIONS:
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["CODE_INTERPRETER_ID"] == {
            "Fn::If": ["UseVpcCodeInterpreter", {"Ref": "VpcCodeInterpreter"}, "aws.codeinterpreter.v1"]
        }, function


def test_the_vpc_code_interpreter_has_no_network_but_its_own(template: dict[str, Any]) -> None:
    resource = template["Resources"]["VpcCodeInterpreter"]
    assert resource["Type"] == "AWS::BedrockAgentCore::CodeInterpreterCustom"
    assert resource["Condition"] == "UseVpcCodeInterpreter"
    assert template["Conditions"]["UseVpcCodeInterpreter"] == {
        "Fn::Equals": [{"Ref": "CodeInterpreterNetworkMode"}, "VPC"]
    }
    network = resource["Properties"]["NetworkConfiguration"]
    assert network["NetworkMode"] == "VPC"
    assert network["VpcConfig"] == {
        "Subnets": {"Ref": "CodeInterpreterSubnetIds"},
        "SecurityGroups": {"Ref": "CodeInterpreterSecurityGroupIds"},
    }
    assert "ExecutionRoleArn" not in resource["Properties"]  # the code gets no AWS credentials
    assert template["Parameters"]["CodeInterpreterNetworkMode"]["Default"] == "SANDBOX"


def test_local_parameters_take_comma_separated_values() -> None:
    """LOCAL_PARAMETERS separates parameters with commas, and a list value has commas too."""
    assert cfn.parse_parameters("AllowedModels=bedrock/*,gpt-4o , LogLevel=INFO,") == {
        "AllowedModels": "bedrock/*,gpt-4o",
        "LogLevel": "INFO",
    }
    assert cfn.parse_parameters("CodeInterpreterCallSeconds=10") == {"CodeInterpreterCallSeconds": "10"}
    assert cfn.parse_parameters("") == {}
