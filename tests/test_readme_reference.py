"""The README's reference sections, held to the code: the configuration reference's defaults
and options, the endpoints table, the command lines, the metrics table, the request log's
fields and the Kubernetes secret; every Python block compiles and every YAML fragment loads.

The tables are read from the README, so a change on either side that the other does not
follow fails here."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel

from routatic_asgi import build_app, load_config, parse_config
from routatic_asgi.classify import Kind, Reason
from routatic_asgi.classify.outcome import SHORT_CIRCUITS
from routatic_asgi.cli import _parser
from routatic_asgi.config import (
    AffinityConfig,
    BreakerConfig,
    Config,
    CooldownConfig,
    GroupMember,
    InboundKey,
    ModelCaps,
    ProviderConfig,
    ResilienceConfig,
    RetryConfig,
    RouteConfig,
    RouteWhen,
    ServerConfig,
)
from routatic_asgi.telemetry.metrics import BREAKER_STATES, CREDENTIAL_STATES, Metrics
from routatic_asgi.telemetry.request_log import OUTCOMES, request_line
from routatic_asgi.transitions import CredentialState, Phase
from tests.fake_clock import FakeClock
from tests.resilience_kit import REQUEST, Upstreams, app_for, client_for

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
PROSE = re.sub(r"```.*?```", "", README, flags=re.S)  # the text around the blocks
MINIMAL: dict[str, Any] = {
    "providers": {"p": {"protocol": "openai", "base_url": "http://p.test/v1", "auth": "none"}},
    "routes": [{"match": "*", "chain": ["p/{model}"]}],
}


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def table(text: str) -> list[list[str]]:
    """The rows of the first table in `text`, cells stripped, header and rule left out."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def variables(text: str) -> dict[str, str]:
    return {name: "sk-example-value-0001" for name in re.findall(r"\$\{(\w+)", text)}


# --- Configuration ----------------------------------------------------------------------


def test_the_configuration_reference_shows_the_defaults(tmp_path: Path) -> None:
    reference = blocks("yaml", section("Configuration"))[0]
    path = tmp_path / "reference.yaml"
    path.write_text(reference)
    shown = load_config(path, env=variables(reference))
    defaults = parse_config(MINIMAL, env={})
    assert shown.server == defaults.server
    assert shown.resilience == defaults.resilience
    zen = shown.providers["zen"]
    assert zen.connect_timeout == ProviderConfig.model_fields["connect_timeout"].default
    assert zen.headers == {}
    assert shown.state == defaults.state


SETTINGS: tuple[type[BaseModel], ...] = (
    Config, ServerConfig, InboundKey, ResilienceConfig, CooldownConfig, RetryConfig,
    BreakerConfig, AffinityConfig, ProviderConfig, ModelCaps, RouteConfig, RouteWhen,
    GroupMember,
)  # fmt: skip


@pytest.mark.parametrize("model", SETTINGS, ids=lambda model: model.__name__)
def test_every_setting_is_written_in_the_readme(model: type[BaseModel]) -> None:
    written = {
        key
        for block in blocks("yaml")
        for key in re.findall(r"(?:^|[{,\s])([a-z_]+):", block, re.M)
    }
    written |= {name for span in spans(PROSE) for name in re.findall(r"[a-z_]+", span)}
    missing = set(model.model_fields) - written
    assert not missing, f"{model.__name__}: {sorted(missing)} not in the README"


def test_every_yaml_fragment_loads_on_a_configuration() -> None:
    fragments = [block for block in blocks("yaml") if "providers:" not in block]
    assert fragments
    for fragment in fragments:
        data = {**MINIMAL, **yaml.safe_load(fragment)}
        parse_config(data, env=variables(fragment))


def test_every_python_block_compiles() -> None:
    found = blocks("python")
    assert len(found) >= 3
    for number, block in enumerate(found):
        compile(block, f"README python block {number}", "exec")


# --- Endpoints --------------------------------------------------------------------------

ENDPOINT = re.compile(r"^(GET|POST|HEAD|PUT|PATCH|DELETE) (/\S*)$")
OPEN = {"/healthz", "/readyz", "/metrics"}  # the README: needs no key


def listed_endpoints() -> set[tuple[str, str]]:
    found = set()
    for row in table(section("Endpoints")):
        for span in spans(row[0]):
            match = ENDPOINT.match(span)
            assert match, f"not METHOD /path: {span!r}"
            found.add((match.group(1), match.group(2)))
    return found


def test_the_endpoints_table_lists_every_route_the_app_mounts_and_nothing_else() -> None:
    app = build_app(parse_config(MINIMAL, env={}), registry=CollectorRegistry())
    mounted = {(method, path) for path, methods in app.routes.items() for method in methods}
    mounted.add(("GET", "/v1/models/{id}"))  # any path under /v1/models/
    assert listed_endpoints() == mounted


async def test_with_proxy_keys_every_listed_endpoint_but_health_and_metrics_needs_one() -> None:
    key = "rk-readme-endpoints-0001"
    served = {"routes": [{"match": "*", "chain": ["p/m"]}]}  # /v1/models/m is listed
    config = parse_config({**MINIMAL, **served, "server": {"keys": [key]}}, env={})
    app = app_for(config, Upstreams(), FakeClock())
    bodies = {"/status/reset": {"reset": "p"}}
    async with client_for(app) as client:
        for method, path in sorted(listed_endpoints()):
            url = path.replace("{id}", "m")
            body = bodies.get(path, REQUEST) if method == "POST" else None
            refused = await client.request(method, url, json=body)
            allowed = await client.request(method, url, json=body, headers={"x-routatic-key": key})
            assert allowed.status_code not in (401, 404, 405) or path == "/status/reset", path
            if path in OPEN:
                assert refused.status_code == allowed.status_code == 200, path
            else:
                assert refused.status_code == 401, path


# --- The command line -------------------------------------------------------------------


def verbs() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **commands.choices}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


LAUNCHERS = ("claude", "codex", "opencode")


def command_lines() -> list[list[str]]:
    """Each `routatic-asgi ...` written in a shell block or a code span, as words, up to the
    first shell operator or comment."""
    texts = [line for block in blocks("sh") for line in block.splitlines()]
    texts += [span for span in spans(PROSE) if span.startswith("routatic-asgi")]
    found = []
    for text in texts:
        for match in re.finditer(r"(?:^|[\s$;&(])routatic-asgi(?=\s|$)(.*)", text):
            rest = re.split(r"\s(?:#|&&|\||>|&)(?:\s|$)|\s&$", match.group(1))[0]
            found.append([word.strip("[]") for word in rest.split()])
    return found


def test_every_command_line_in_the_readme_is_one_the_cli_takes() -> None:
    every = verbs()
    lines = command_lines()
    assert len(lines) >= 10
    for words in lines:
        verb = words[0] if words and not words[0].startswith("-") else ""
        assert verb in every, words
        arguments = words[1:] if verb else words
        if verb in LAUNCHERS:  # our options lead; the rest is the client's
            while arguments[:1] in (["--config"], ["--port"]):
                arguments = arguments[2:]
            assert arguments[:1] != ["--port"] and not (arguments and arguments[0] == "--config")
            continue
        for word in arguments:
            if word.startswith("--"):
                assert word.split("=")[0] in options(every[verb]), (verb, word)


def test_every_option_the_prose_names_belongs_to_a_verb() -> None:
    known = set().union(*(options(parser) for parser in verbs().values()))
    named = {
        word
        for span in spans(PROSE)
        if not span.startswith("routatic-asgi")
        for word in re.findall(r"(?<![\w-])--[a-z][\w-]*", span)
    }
    assert named and named <= known, sorted(named - known)


# --- Observability ----------------------------------------------------------------------


def instruments() -> dict[str, Counter | Gauge | Histogram]:
    metrics = Metrics(CollectorRegistry())
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            found[value._name + "_total"] = value
        elif isinstance(value, Gauge | Histogram):
            found[value._name] = value
    return found


def metrics_table() -> dict[str, tuple[list[str], str]]:
    rows = table(section("Observability"))
    return {
        spans(name)[0]: ([label.strip() for label in labels.split(",") if label.strip()], what)
        for name, labels, what in rows
    }


def test_the_metrics_table_names_every_metric_with_its_labels_and_type() -> None:
    exported, listed = instruments(), metrics_table()
    assert set(listed) == set(exported)
    for name, (labels, _) in listed.items():
        metric = exported[name]
        assert list(metric._labelnames) == labels, name
        # The suffix says the type: a counter for rate(), a histogram for quantiles.
        kind = {"_total": Counter, "_seconds": Histogram}.get(name[name.rfind("_") :], Gauge)
        assert isinstance(metric, kind), name


def test_the_metrics_table_says_the_values_its_labels_and_gauges_take() -> None:
    listed = {name: what for name, (_, what) in metrics_table().items()}

    def words(name: str) -> set[str]:
        return set(spans(listed[name]))

    assert words("routatic_requests_total") == set(OUTCOMES)
    assert words("routatic_upstream_attempts_total") == {k.value for k in Kind} - {"skipped"}
    assert words("routatic_short_circuits_total") == set(SHORT_CIRCUITS)
    assert words("routatic_breaker_transitions_total") == {p.value for p in Phase}
    assert words("routatic_tokens_total") == {"input", "output", "cache_read", "cache_write"}
    assert words("routatic_fallbacks_total") <= {r.value for r in Reason}
    breaker = dict(re.findall(r"(\d) ([a-z_]+)", listed["routatic_breaker_state"]))
    assert {state: int(n) for n, state in breaker.items()} == BREAKER_STATES
    credential = dict(re.findall(r"(\d) ([a-z]+)", listed["routatic_credential_state"]))
    assert {state: int(n) for n, state in credential.items()} == CREDENTIAL_STATES
    assert set(CREDENTIAL_STATES) == {s.value for s in CredentialState}


def test_the_request_log_example_has_the_fields_of_a_line() -> None:
    [example] = [json.loads(b) for b in blocks("json", section("Observability"))]
    line = request_line(
        at=0.0, actor=None, protocol="anthropic", endpoint="messages", request=None,
        status=200, ttfb=None, duration=0.0, trace_id="0" * 32,
    )  # fmt: skip
    assert list(example) == list(line)
    assert list(example["tokens"]) == list(line["tokens"])


# --- Deployment -------------------------------------------------------------------------


def test_the_readmes_kubernetes_secret_is_the_one_the_deployment_reads() -> None:
    [command] = [b for b in blocks("sh", section("Dashboards and deployment")) if "kubectl" in b]
    name = re.search(r"create secret generic (\S+)", command)
    assert name is not None
    kubernetes = ROOT / "deploy" / "kubernetes"
    deployment = yaml.safe_load((kubernetes / "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": name.group(1)}} in container["envFrom"]
    configmap = yaml.safe_load((kubernetes / "configmap.yaml").read_text())
    needed = set(re.findall(r"\$\{(\w+)", configmap["data"]["routatic.yaml"]))
    assert needed <= set(re.findall(r"--from-literal=(\w+)=", command))


# --- Provider settings the reference shows ----------------------------------------------


async def test_a_providers_headers_and_connect_timeout_reach_its_calls() -> None:
    config = parse_config(
        {
            "providers": {
                "p": {
                    "protocol": "anthropic",
                    "base_url": "http://p.test",
                    "auth": "none",
                    "headers": {"x-title": "my-app"},
                    "connect_timeout": "2s",
                },
                "q": {"protocol": "anthropic", "base_url": "http://q.test", "auth": "none"},
            },
            "routes": [{"match": "*", "chain": ["p/{model}", "q/{model}"]}],
        },
        env={},
    )
    upstreams = Upstreams()
    async with client_for(app_for(config, upstreams, FakeClock())) as client:
        assert (await client.post("/v1/messages", json=REQUEST)).status_code == 200
        upstreams.script("p.test", 503, 503)
        assert (await client.post("/v1/messages", json=REQUEST)).status_code == 200
    first, *_, last = upstreams.calls
    assert first.headers["x-title"] == "my-app" and "x-title" not in last.headers
    assert last.url.host == "q.test"
    assert first.extensions["timeout"]["connect"] == 2.0
    assert last.extensions["timeout"]["connect"] == 10.0
    assert first.extensions["timeout"]["read"] == config.resilience.idle_timeout
