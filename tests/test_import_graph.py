"""The package's import graph: no circle, and no import from a lower layer to a higher one.

Read from the source (importing the package root would load everything). Layers, lowest
first, as docs/architecture.md draws them; a module not named here is in the layer of its
package (`translate`, `telemetry`, `shapes`).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "routatic_asgi"

LAYERS = [
    # 0. foundations: no decisions, no knowledge of the chain
    {
        "errors",
        "config_errors",
        "clock",
        "classify",
        "sse",
        "http11",
        "http11_connection",
        "shapes",  # the package: rules.py, containers.py and one module per endpoint
        "session",
    },
    # 1. the objects every layer shares
    {"config", "attempt", "state", "transitions"},
    # 2. decisions, codecs, storage of keys, the upstream client, telemetry
    {
        "answer",
        "retry",
        "routing",
        "payload",
        "affinity",
        "keyring",
        "marks",
        "exchange",
        "replay",
        "translate",
        "upstream",
        "telemetry",
        "audit",
        "launch",
        "probe",
        "reload",
        "status_page",
        "rescue",
        "redaction",
        "hedge",
        "connections",
        "supervisor",
        "memory_budget",
        # the router's parts: reading the request, the attempts over targets, the commit point
        "intake",
        "flight",
        "commit_point",
    },
    # 3. the middlewares: they talk through scope keys, never through imports of each other
    {"inbound_auth", "router", "short_circuit", "breaker", "relay"},
    # 4. assembly and front ends
    {"app", "cli", "__init__"},
]
MIDDLEWARES = LAYERS[3]


def _name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name == "routatic_asgi":
                found.add("__init__")
            elif name.startswith("routatic_asgi."):
                found.add(name.removeprefix("routatic_asgi."))
    return found


def graph() -> dict[str, set[str]]:
    return {_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    top = module.split(".")[0]
    for rank, members in enumerate(LAYERS):
        if module in members or top in members:
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and the docs")


def test_every_module_belongs_to_a_layer() -> None:
    for module in graph():
        layer(module)


def test_no_module_imports_a_higher_layer() -> None:
    upward = {
        (module, imported)
        for module, imports in graph().items()
        for imported in imports
        if layer(imported) > layer(module)
    }
    assert not upward


def test_middlewares_never_import_each_other() -> None:
    edges = graph()
    for module in MIDDLEWARES:
        assert not edges[module] & (MIDDLEWARES - {module}), module


def test_there_is_no_import_circle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import circle: " + " -> ".join([*path, module]))
        if module in done or module not in edges:
            return
        for imported in sorted(edges[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
