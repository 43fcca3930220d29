"""deploy/: the files parse, agree with each other and with the app, and the alert rules pass
promtool. No Docker engine or cluster is needed: the manifests are read as YAML."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from routatic_asgi.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
PROMTOOL = shutil.which("promtool")
ENV = {"ROUTATIC_PROXY_KEY": "proxy-key-test-0001", "OPENCODE_API_KEY": "sk-zen-test-0001"}


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[document["kind"]] = document
    return found


def test_every_yaml_file_parses() -> None:
    paths = [*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml"), *(ROOT / "grafana").rglob("*.yml")]
    assert len(paths) >= 12
    for path in paths:
        assert list(yaml.safe_load_all(path.read_text())), path


def test_the_dockerfile_is_slim_and_runs_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert bases and all(base.endswith("-slim") for base in bases)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["routatic-asgi"]' in text


def test_compose_runs_the_whole_stack_with_dashboards_provisioned() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "routatic",
        "redis",
        "prometheus",
        "grafana",
        "otel-collector",
        "jaeger",
    }
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{source} is mounted but missing"
    grafana = " ".join(services["grafana"]["volumes"])
    assert "../grafana/provisioning:/etc/grafana/provisioning" in grafana
    assert "../grafana/dashboards:/var/lib/grafana/dashboards/routatic" in grafana
    routatic = services["routatic"]
    assert routatic["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["routatic:8787"]
    collector = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"


def test_the_shipped_configurations_are_valid() -> None:
    compose_config = parse_config(yaml.safe_load((DEPLOY / "routatic.yaml").read_text()), env=ENV)
    assert compose_config.state.startswith("redis://") and compose_config.server.keys
    configmap = manifests()["ConfigMap"]
    k8s_config = parse_config(yaml.safe_load(configmap["data"]["routatic.yaml"]), env=ENV)
    assert k8s_config.state.startswith("redis://") and k8s_config.server.keys


def test_kubernetes_objects_agree_with_each_other() -> None:
    objects = manifests()
    assert {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "ServiceMonitor", "Kustomization"} <= set(objects)  # fmt: skip
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert port == 8787
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    for kind in ("PodDisruptionBudget", "ServiceMonitor"):
        assert objects[kind]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["ServiceMonitor"]["spec"]["endpoints"][0] == {
        "port": "http",
        "path": "/metrics",
        "interval": "15s",
    }
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == (deployment["metadata"]["name"])
    )
    mounted = {v["name"] for v in pod["spec"]["volumes"] if "configMap" in v}
    assert mounted and objects["ConfigMap"]["metadata"]["name"] in {
        v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v
    }
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_the_alert_rules_cover_the_four_failures() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert names == {
        "RoutaticBreakerOpenTooLong",
        "RoutaticHighFallbackRate",
        "RoutaticRouteAllTargetsFailing",
        "RoutaticStateStoreDegraded",
    }


@pytest.mark.skipif(PROMTOOL is None, reason="no promtool on PATH: apt-get install -y prometheus")
@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
        ("check", "config", "prometheus.yml"),
    ],
)
def test_promtool_accepts_the_rules_their_tests_and_the_scrape_config(
    args: tuple[str, ...],
) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
