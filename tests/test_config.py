"""Configuration: schema, `${VAR}` expansion, errors that name the file, path and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from routatic_asgi import ConfigError, default_config, load_config, parse_config

MINIMAL = {
    "providers": {
        "anthropic": {
            "protocol": "anthropic",
            "base_url": "https://api.anthropic.com/",
            "auth": "passthrough",
        },
        "zen": {
            "protocol": "openai",
            "base_url": "https://opencode.ai/zen/v1",
            "keys": ["${ZEN_KEY}"],
        },
    },
    "routes": [{"match": "claude-*", "chain": ["anthropic/{model}", "zen/deepseek-v4-flash"]}],
}


def test_a_full_file_loads_with_defaults_and_durations(tmp_path: Path) -> None:
    path = tmp_path / "routatic.yaml"
    path.write_text(
        """
server: {port: 9000, keys: [rk-one, {name: ci, key: rk-two}], max_body: 2MiB}
providers:
  anthropic: {protocol: anthropic, base_url: "https://api.anthropic.com", auth: passthrough}
routes:
  - match: "*"
    chain:
      - anthropic/{model}
resilience:
  cooldown: {base: 250ms, max: 15m}
  deadline: 1h
  first_byte_timeout: 45
state: redis://127.0.0.1:6379/0
"""
    )
    config = load_config(path)
    assert config.server.port == 9000
    assert config.server.max_body == 2 * 1024 * 1024
    assert [key.name for key in config.server.keys] == ["key0", "ci"]
    assert config.resilience.cooldown.base == 0.25
    assert config.resilience.cooldown.max == 900
    assert config.resilience.deadline == 3600
    assert config.resilience.first_byte_timeout == 45
    assert config.resilience.fallback_on == [408, 429, 500, 502, 503, 504, 529]
    assert config.state == "redis://127.0.0.1:6379/0"


def test_variables_expand_and_record_where_they_came_from() -> None:
    config = parse_config(MINIMAL, env={"ZEN_KEY": "sk-zen-secret"})
    assert config.providers["zen"].keys[0].get_secret_value() == "sk-zen-secret"
    assert config.variable_for("providers.zen.keys.0") == "ZEN_KEY"
    assert config.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert "sk-zen-secret" not in repr(config)


def test_a_default_applies_when_the_variable_is_unset() -> None:
    data = {**MINIMAL, "state": "${STATE_URL:-memory}"}
    assert parse_config(data, env={"ZEN_KEY": "k"}).state == "memory"


def test_a_missing_variable_names_itself_the_file_and_the_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(MINIMAL, source="routatic.yaml", env={})
    message = str(caught.value)
    assert "routatic.yaml" in message
    assert "providers.zen.keys.0" in message
    assert "ZEN_KEY" in message
    assert "export ZEN_KEY" in message


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (
            {"providers": {"x": {"protocol": "anthropic", "base_url": "https://a.example"}}},
            "providers.x",
            "auth: passthrough",
        ),
        (
            {"providers": {"x": {"protocol": "grpc", "base_url": "https://a", "auth": "none"}}},
            "providers.x.protocol",
            "anthropic",
        ),
        (
            {"providers": {"x": {"protocol": "openai", "base_url": "ftp://a", "auth": "none"}}},
            "providers.x.base_url",
            "http",
        ),
        ({"routes": [{"match": "*", "chain": ["nobody/{model}"]}]}, "routes.0.chain", "nobody"),
        (
            {"routes": [{"match": "*", "chain": ["just-a-model"]}]},
            "routes.0.chain.0",
            "provider/model",
        ),
        ({"resilience": {"deadline": "soon"}}, "resilience.deadline", "duration"),
        ({"server": {"max_body": "big"}}, "server.max_body", "size"),
        ({"surprise": 1}, "surprise", "remove or rename"),
        ({"state": "postgres://x"}, "state", "redis://"),
    ],
)
def test_invalid_files_say_where_and_how_to_fix(
    change: dict[str, object], path: str, words: str
) -> None:
    data = {**MINIMAL, **change}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="f.yaml", env={"ZEN_KEY": "k"})
    assert caught.value.source == "f.yaml"
    assert caught.value.path == path
    assert words in str(caught.value)
    assert caught.value.fix


def test_every_missing_variable_is_named_at_once() -> None:
    data = {**MINIMAL, "state": "${STATE_URL}"}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source="f.yaml", env={})
    assert "ZEN_KEY (providers.zen.keys.0)" in str(caught.value)
    assert "STATE_URL (state)" in str(caught.value)
    assert "export ZEN_KEY=... STATE_URL=..." in caught.value.fix


def test_placeholders_need_no_quotes_in_flow_lists(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        "providers:\n"
        "  zen: {protocol: openai, base_url: 'https://${ZEN_HOST:-opencode.ai}/zen/v1', keys: [${ZEN_A}, ${ZEN_B}]}\n"
        "routes:\n"
        "  - {match: 'claude-*', chain: [zen/{model}, zen/deepseek-v4-flash]}  # ${NOT_READ}\n"
        '  - match: "*"\n'
        '    chain: ["zen/{model}"]\n'
    )
    config = load_config(path, env={"ZEN_A": "sk-a", "ZEN_B": "sk-b"})
    zen = config.providers["zen"]
    assert [key.get_secret_value() for key in zen.keys] == ["sk-a", "sk-b"]
    assert zen.base_url == "https://opencode.ai/zen/v1"
    assert config.routes[0].chain == ["zen/{model}", "zen/deepseek-v4-flash"]
    assert config.routes[1].chain == ["zen/{model}"]
    assert config.variable_for("providers.zen.keys.1") == "ZEN_B"


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("providers: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(broken)


def test_the_embedded_default_adds_fallbacks_whose_keys_are_set() -> None:
    bare = default_config(env={})
    assert list(bare.providers) == ["anthropic"]
    assert bare.routes[0].chain == ["anthropic/{model}"]
    assert bare.providers["anthropic"].passthrough
    full = default_config(env={"OPENCODE_API_KEY": "sk-oc", "DEEPSEEK_API_KEY": "sk-ds"})
    assert full.routes[0].chain == [
        "anthropic/{model}",
        "zen/deepseek-v4-flash",
        "deepseek/deepseek-chat",
    ]
    assert full.variable_for("providers.zen.keys.0") == "OPENCODE_API_KEY"


def test_route_for_takes_the_first_matching_glob() -> None:
    config = parse_config(
        {
            **MINIMAL,
            "routes": [
                {"match": "claude-*", "chain": ["anthropic/{model}"]},
                {"match": "*", "chain": ["zen/x"]},
            ],
        },
        env={"ZEN_KEY": "k"},
    )
    assert config.route_for("claude-opus-4-7") is config.routes[0]
    assert config.route_for("gpt-5") is config.routes[1]


def test_every_configuration_in_the_readme_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [
        block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "providers:" in block
    ]
    assert blocks
    for number, block in enumerate(blocks):
        if "routes:" not in block:  # a fragment: give it a route to stand on
            block += (
                "\nroutes: [{match: '*', chain: ["
                + re.findall(r"^  (\w+):", block, re.M)[0]
                + "/x]}]\n"
            )
        path = tmp_path / f"readme{number}.yaml"
        path.write_text(block)
        variables = {name: "sk-example-value" for name in re.findall(r"\$\{(\w+)", block)}
        load_config(path, env=variables)
