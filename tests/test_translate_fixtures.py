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
