"""Golden fixtures of both protocols, and the compatibility matrix they keep true."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.translation_cases import all_fixtures, load, run

MATRIX = Path(__file__).parent.parent / "docs" / "compat-matrix.md"
LEVELS = {"full", "partial", "unsupported", "n/a"}
# An overview cell: a level, then `passthrough` and/or the rows that show it.
_CELL = re.compile(
    r"^(?P<level>full|partial|unsupported|n/a)"
    r"(?: · (?P<passthrough>passthrough)?\s*(?P<rows>`[^`]+`(?: \+ `[^`]+`)*)?)?$"
)
_STRENGTH = ["unsupported", "partial", "full"]
_ROW = re.compile(
    r"^\| `(?P<id>[^`]+)` \|[^|]*\| (?P<passthrough>[^|]+) \| (?P<translated>[^|]+) \|"
)


def matrix_rows() -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for line in MATRIX.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            assert match["id"] not in rows, f"{match['id']} appears twice in the matrix"
            rows[match["id"]] = (match["passthrough"].strip(), match["translated"].strip())
    return rows


@pytest.mark.parametrize("path", all_fixtures(), ids=lambda path: path.stem)
def test_golden_fixture(path: Path) -> None:
    fixture = load(path)
    produced = run(fixture)
    if os.environ.get("ROUTATIC_WRITE_GOLDEN") == "1":
        fixture["expected"] = produced
        path.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n")
    assert produced == fixture["expected"], fixture["description"]


def test_there_are_fixtures_of_every_kind_every_way() -> None:
    seen = {(load(p)["direction"], load(p)["kind"]) for p in all_fixtures()}
    protocols = ("anthropic", "openai", "responses")
    pairs = [f"{a}-to-{b}" for a in protocols for b in protocols if a != b]
    for direction in pairs:
        for kind in ("request", "response", "stream", "error", "headers"):
            assert (direction, kind) in seen, (direction, kind)


def test_the_matrix_uses_known_levels_only() -> None:
    rows = matrix_rows()
    assert len(rows) > 80
    for row_id, levels in rows.items():
        assert set(levels) <= LEVELS, f"{row_id}: {levels}"


def test_every_fixture_claim_matches_the_matrix() -> None:
    rows = matrix_rows()
    for path in all_fixtures():
        for row_id, level in load(path)["covers"].items():
            assert row_id in rows, f"{path.name} covers {row_id}, which the matrix lacks"
            assert rows[row_id][1] == level, (
                f"{path.name} shows {row_id} as {level}; the matrix says {rows[row_id][1]}"
            )


def test_every_matrix_row_is_shown_by_a_fixture() -> None:
    covered = {row_id for path in all_fixtures() for row_id in load(path)["covers"]}
    missing = [
        row_id
        for row_id, (_, translated) in matrix_rows().items()
        if translated != "n/a" and row_id not in covered
    ]
    assert not missing, f"matrix rows no fixture shows: {missing}"


def overview_cells() -> list[str]:
    """The cells of the client-by-target tables ("At a glance"), every target column."""
    text = MATRIX.read_text()
    start = text.index("## At a glance")
    section = text[start : text.index("\n## ", start + 1)]
    cells = []
    for line in section.splitlines():
        if line.startswith("| ") and " · " in line:
            cells += [cell.strip() for cell in line.strip("|").split("|")[1:]]
    return cells


def test_the_overview_agrees_with_the_rows_it_names() -> None:
    rows = matrix_rows()
    cells = overview_cells()
    assert len(cells) >= 3 * 3 * 14  # three clients, three targets, the families of each
    for cell in cells:
        match = _CELL.match(cell)
        assert match, f"an overview cell reads level · rows: {cell!r}"
        names = re.findall(r"`([^`]+)`", match["rows"] or "")
        column = 0 if match["passthrough"] else 1
        for name in names:
            assert name in rows, f"{cell!r} names {name}, which the matrix lacks"
        if not names:
            assert match["level"] in ("full", "n/a") or match["passthrough"], cell
            continue
        levels = [rows[name][column] for name in names]
        weakest = min(levels, key=_STRENGTH.index)
        assert match["level"] == weakest, f"{cell!r}: its rows say {levels}"
