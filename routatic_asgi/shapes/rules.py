"""Rules: small composable checks of one JSON value's type and shape.

A rule's `check` takes a parsed JSON value and returns None when the value is acceptable,
or a `Bad`: the path to the first wrong field (built innermost first, and only on failure,
so an acceptable body allocates nothing) and what is wrong with it. `obj` checks only the
fields it names and lets every other field through; a `null` optional field counts as
absent. Pure: no I/O, no state, and a rule never changes what it reads.

A long list is first checked column by column (`all_pass`): each field of all its objects at
once, in C (`map`, `set`, `compress`), which costs a fraction of a walk element by element.
Only a list that does not pass that way is walked element by element, to name the first
wrong field; `all_pass` answers True only for values `check` accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import chain, compress, repeat
from operator import eq, is_, is_not
from typing import Any

__all__ = [
    "BOOL",
    "INT",
    "LIST",
    "NUMBER",
    "OBJECT",
    "STRING",
    "Bad",
    "Rule",
    "either",
    "list_of",
    "obj",
    "one_of",
    "tagged",
]


class Bad:
    """The first wrong field: its path (innermost part first, while it is built) and why."""

    __slots__ = ("path", "problem")

    def __init__(self, problem: str) -> None:
        self.path: list[str] = []
        self.problem = problem

    def at(self, part: str | int) -> Bad:
        self.path.append(str(part))
        return self

    def field(self) -> str:
        return ".".join(reversed(self.path))


def described(value: Any) -> str:
    """What a value is, in words a client understands (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


Checker = Callable[[Any], "Bad | None"]


class Rule:
    """A check of one value. `by_type` maps each type the rule may accept to None (accepted
    without a look inside) or to the check of a value known to be of that type; a value of
    any other type goes to `check`, which refuses it. Containers look their elements' types
    up in it inline, so a well-formed 200 KB request costs few calls to check."""

    __slots__ = ("by_type",)

    def __init__(self, by_type: Mapping[type, Checker | None]) -> None:
        self.by_type = dict(by_type)

    def check(self, value: Any) -> Bad | None:
        raise NotImplementedError

    def all_pass(self, values: list[Any]) -> bool:
        """Whether `check` accepts every one of `values` (rules over many values at once
        answer this column by column)."""
        return all(_checked(self, value) is None for value in values)

    def column_passes(self, column: list[Any]) -> bool:
        """Whether every value of one field of many objects passes, None standing for the
        field's absence."""
        return self.all_pass(_present(column))

    def __call__(self, value: Any) -> Bad | None:
        return self.check(value)


def _checked(rule: Rule, value: Any) -> Bad | None:
    """`rule` applied to `value` through its `by_type`, as containers do inline."""
    inner = rule.by_type.get(type(value), rule.check)
    return None if inner is None else inner(value)


def _all(values: list[Any], kind: type) -> bool:
    return set(map(type, values)) <= {kind}


def _column(values: list[dict[str, Any]], name: str) -> list[Any]:
    """The field `name` of each object, None where it is absent."""
    return list(map(dict.get, values, repeat(name)))


def _present(values: list[Any]) -> list[Any]:
    return list(compress(values, map(is_not, values, repeat(None))))


def _those(
    values: list[Any], keys: list[Any], key: Any, test: Callable[[Any, Any], Any]
) -> list[Any]:
    """The values whose key passes `test` against `key` (`is_` for types, `eq` for strings)."""
    return list(compress(values, map(test, keys, repeat(key))))


# A list this long is checked column by column before it is walked element by element.
_COLUMNS_FROM = 8


class _Typed(Rule):
    __slots__ = ("expected", "or_absent")

    def __init__(self, expected: str, *accepts: type) -> None:
        super().__init__(dict.fromkeys(accepts))
        self.expected = expected
        self.or_absent = frozenset({*accepts, type(None)})

    def check(self, value: Any) -> Bad | None:
        if type(value) in self.by_type:
            return None
        return Bad(f"expected {self.expected}, got {described(value)}")

    def all_pass(self, values: list[Any]) -> bool:
        return set(map(type, values)) <= self.by_type.keys()

    def column_passes(self, column: list[Any]) -> bool:
        return set(map(type, column)) <= self.or_absent


class _NonNegativeInt(Rule):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__({int: self.check})

    def check(self, value: Any) -> Bad | None:
        if type(value) is int and value >= 0:
            return None
        return Bad(f"expected an integer ≥ 0, got {described(value)}")


STRING = _Typed("a string", str)
BOOL = _Typed("a boolean", bool)
NUMBER = _Typed("a number", int, float)
OBJECT = _Typed("an object", dict)
LIST = _Typed("a list", list)
INT: Rule = _NonNegativeInt()


_STRING_OR_ABSENT = frozenset({str, type(None)})


class one_of(Rule):  # lower case: read as a rule, like the constants beside it
    """A string among `choices`."""

    __slots__ = ("allowed", "listed", "or_absent")

    def __init__(self, *choices: str) -> None:
        super().__init__({str: self.check})
        self.allowed = frozenset(choices)
        self.or_absent = frozenset({*choices, None})
        self.listed = ", ".join(choices)

    def check(self, value: Any) -> Bad | None:
        if type(value) is str and value in self.allowed:
            return None
        if type(value) is str:
            return Bad(f"expected one of {self.listed}")
        return Bad(f"expected one of {self.listed}, got {described(value)}")

    def all_pass(self, values: list[Any]) -> bool:
        return _all(values, str) and set(values) <= self.allowed

    def column_passes(self, column: list[Any]) -> bool:
        return set(map(type, column)) <= _STRING_OR_ABSENT and set(column) <= self.or_absent


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
        if not _all(values, dict):
            return False
        for name, rule in self.rules.items():
            column = _column(values, name)
            if (name in self.needed and None in column) or not rule.column_passes(column):
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
        return _all(values, list) and self.rule.all_pass(list(chain.from_iterable(values)))

    def check(self, value: Any) -> Bad | None:
        if type(value) is not list:
            return Bad(f"expected a list, got {described(value)}")
        return self.items(value)

    def items(self, value: list[Any]) -> Bad | None:
        if len(value) >= _COLUMNS_FROM and self.rule.all_pass(value):
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
        return _checked(self, value)

    def all_pass(self, values: list[Any]) -> bool:
        types = list(map(type, values))
        for kind in set(types):
            rule = self.branches.get(kind)
            if rule is None or not rule.all_pass(_those(values, types, kind, is_)):
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
        if not _all(values, dict):
            return False
        kinds = _column(values, "type")
        if not _all(kinds, str):
            return False
        for kind in set(kinds):
            rule = self.rules.get(kind)
            if rule is None:
                if not (self.open_suffixes and kind.endswith(self.open_suffixes)):
                    return False
            elif not rule.all_pass(_those(values, kinds, kind, eq)):
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
