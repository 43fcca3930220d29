"""Rules of containers: an object's named fields (`obj`), a list's items (`list_of`), a value
of one of several types (`either`), an object told apart by its `type` (`tagged`).

Built from rules.py's rule of one value. A list of `COLUMNS_FROM` or more values is first
checked column by column (`all_pass`), and walked element by element only when that does not
pass, to name the first wrong field. Pure: no I/O, no state; a rule never changes what it
reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import chain
from operator import eq, is_
from typing import Any

from routatic_asgi.shapes.rules import (
    COLUMNS_FROM,
    Bad,
    Checker,
    Rule,
    all_of_type,
    checked,
    column,
    described,
    those,
)

__all__ = ["either", "list_of", "obj", "tagged"]


class obj(Rule):
    """An object whose named fields follow their rules; others are not looked at."""

    __slots__ = ("needed", "rules", "table")

    def __init__(self, fields: Mapping[str, Rule], required: Iterable[str] = ()) -> None:
        super().__init__({dict: self.fields})
        self.rules = dict(fields)
        self.table = {name: (rule.by_type, rule.check) for name, rule in fields.items()}
        self.needed = tuple(required)
        if not self.rules.keys() >= set(self.needed):
            raise ValueError("every required field needs a rule")

    def all_pass(self, values: list[Any]) -> bool:
        if not all_of_type(values, dict):
            return False
        for name, rule in self.rules.items():
            values_of = column(values, name)
            if (name in self.needed and None in values_of) or not rule.column_passes(values_of):
                return False
        return True

    def check(self, value: Any) -> Bad | None:
        if type(value) is not dict:
            return Bad(f"expected an object, got {described(value)}")
        return self.fields(value)

    def fields(self, value: dict[str, Any]) -> Bad | None:
        for name in self.needed:
            if value.get(name) is None:
                return Bad("field required").at(name)
        table = self.table
        for name, item in value.items():
            entry = table.get(name)
            if entry is None or item is None:
                continue
            inner = entry[0].get(type(item), entry[1])
            if inner is None:
                continue
            bad = inner(item)
            if bad is not None:
                return bad.at(name)
        return None


class list_of(Rule):
    __slots__ = ("item", "rule")

    def __init__(self, item: Rule) -> None:
        super().__init__({list: self.items})
        self.rule = item
        self.item = (item.by_type, item.check)

    def all_pass(self, values: list[Any]) -> bool:
        return all_of_type(values, list) and self.rule.all_pass(list(chain.from_iterable(values)))

    def check(self, value: Any) -> Bad | None:
        if type(value) is not list:
            return Bad(f"expected a list, got {described(value)}")
        return self.items(value)

    def items(self, value: list[Any]) -> Bad | None:
        if len(value) >= COLUMNS_FROM and self.rule.all_pass(value):
            return None
        by_type, check = self.item
        for index, element in enumerate(value):
            inner = by_type.get(type(element), check)
            if inner is None:
                continue
            bad = inner(element)
            if bad is not None:
                return bad.at(index)
        return None


def _accepted(value: Any) -> None:
    return None


class either(Rule):
    """A value that may be a string, a list or an object, each with a rule of its own."""

    __slots__ = ("branches", "expected")

    def __init__(
        self, text: Rule | None = None, items: Rule | None = None, mapping: Rule | None = None
    ) -> None:
        branches = ((str, text, "a string"), (list, items, "a list"), (dict, mapping, "an object"))
        self.branches: dict[type, Rule] = {t: r for t, r, _ in branches if r is not None}
        super().__init__({t: r.by_type.get(t, r.check) for t, r, _ in branches if r is not None})
        self.expected = " or ".join(name for _, r, name in branches if r is not None)

    def check(self, value: Any) -> Bad | None:
        if type(value) not in self.by_type:
            return Bad(f"expected {self.expected}, got {described(value)}")
        return checked(self, value)

    def all_pass(self, values: list[Any]) -> bool:
        types = list(map(type, values))
        for kind in set(types):
            rule = self.branches.get(kind)
            if rule is None or not rule.all_pass(those(values, types, kind, is_)):
                return False
        return True


class tagged(Rule):
    """An object told apart by its `type`: a known type follows its case; a type ending in
    one of `open_suffixes` is any object (a family new members join); any other is refused."""

    __slots__ = ("cases", "known", "open_suffixes", "rules")

    def __init__(self, cases: Mapping[str, Rule], open_suffixes: tuple[str, ...] = ()) -> None:
        super().__init__({dict: self.kinds})
        self.rules = dict(cases)
        # Each case skips its own is-it-an-object test: that was just made here.
        self.cases: dict[str, Checker] = {
            kind: rule.by_type.get(dict, rule.check) or _accepted for kind, rule in cases.items()
        }
        self.known = ", ".join(cases)
        self.open_suffixes = open_suffixes

    def check(self, value: Any) -> Bad | None:
        if type(value) is not dict:
            return Bad(f"expected an object, got {described(value)}")
        return self.kinds(value)

    def all_pass(self, values: list[Any]) -> bool:
        if not all_of_type(values, dict):
            return False
        kinds = column(values, "type")
        if not all_of_type(kinds, str):
            return False
        for kind in set(kinds):
            rule = self.rules.get(kind)
            if rule is None:
                if not (self.open_suffixes and kind.endswith(self.open_suffixes)):
                    return False
            elif not rule.all_pass(those(values, kinds, kind, eq)):
                return False
        return True

    def kinds(self, value: dict[str, Any]) -> Bad | None:
        kind = value.get("type")
        case = self.cases.get(kind) if type(kind) is str else None
        if case is not None:
            return case(value)
        if type(kind) is not str:
            problem = (
                "field required" if kind is None else f"expected a string, got {described(kind)}"
            )
            return Bad(problem).at("type")
        if self.open_suffixes and kind.endswith(self.open_suffixes):
            return None
        return Bad(f"unknown type {kind[:64]!r}; expected one of {self.known}").at("type")
