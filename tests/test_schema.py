"""`routatic-asgi schema` is a real JSON Schema: it accepts every shipped configuration as
written (before `${VAR}` expansion) and refuses what the loader refuses; every YAML block of
the README parses with plain PyYAML."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def schema() -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "routatic_asgi.cli", "schema"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


def shipped_configurations() -> list[tuple[str, Any]]:
    found = []
    for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", README, re.S)):
        data = yaml.safe_load(block)
        if isinstance(data, dict) and "providers" in data:
            if "routes" not in data:  # a fragment: give it a route to stand on
                data["routes"] = [{"match": "*", "chain": [f"{next(iter(data['providers']))}/x"]}]
            found.append((f"README block {number}", data))
    found.append(("deploy/routatic.yaml", yaml.safe_load((ROOT / "deploy/routatic.yaml").read_text())))
    configmap = yaml.safe_load((ROOT / "deploy/kubernetes/configmap.yaml").read_text())
    found.append(("deploy/kubernetes/configmap.yaml", yaml.safe_load(configmap["data"]["routatic.yaml"])))
    return found


def test_every_yaml_block_in_the_readme_parses_with_plain_pyyaml() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        yaml.safe_load(block)  # raises on `[${VAR}]` or `[zen/{model}]` left unquoted


def test_the_schema_validates_every_configuration_in_the_readme_and_deploy() -> None:
    validator_class = jsonschema.validators.validator_for(schema())
    validator_class.check_schema(schema())
    validator = validator_class(schema())
    configurations = shipped_configurations()
    assert len(configurations) >= 5
    for name, data in configurations:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert errors == [], name


@pytest.mark.parametrize(
    "wrong",
    [
        {"server": {"max_bdy": "1MiB"}},
        {"resilience": {"deadline": True}},
        {"server": {"keys": [{"name": "a"}]}},
        {"providers": {"p": {"protocol": "smtp", "base_url": "https://x", "auth": "none"}}},
        {"routes": [{"match": "*", "chain": [{"group": [{"target": "p/m", "weight": 0}]}]}]},
        {"routes": [{"match": "*", "chain": [{"group": []}]}]},
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(wrong: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "providers": {"p": {"protocol": "openai", "base_url": "https://x/v1", "auth": "none"}},
        "routes": [{"match": "*", "chain": ["p/m"]}],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**base, **wrong}, schema())


def test_durations_sizes_and_the_keys_shorthand_are_accepted_as_written() -> None:
    data = {
        "server": {"keys": ["${PROXY_KEY}", {"name": "team-a", "key": "${TEAM_A}"}], "max_body": "32MiB"},
        "providers": {"p": {"protocol": "openai", "base_url": "https://x/v1", "keys": ["${K}"]}},
        "routes": [{"match": "*", "chain": ["p/m"]}],
        "resilience": {"deadline": "10m", "cooldown": {"base": "30s", "max": 900},
                       "affinity": {"hold": "5m"}},
    }
    jsonschema.validate(data, schema())
