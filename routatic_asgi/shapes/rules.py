"""Rules: small composable checks of one JSON value's type and shape.

A rule's `check` takes a parsed JSON value and returns None when the value is acceptable,
or a `Bad`: the path to the first wrong field (built innermost first, and only on failure,
so an acceptable body allocates nothing) and what is wrong with it. `obj` (containers.py)
checks only the fields it names and lets every other field through; a `null` optional field
counts as absent. Pure: no I/O, no state, and a rule never changes what it reads.

This module holds the rule of one value and the scalar rules; containers.py the rules of
objects and lists built from them. A long list is first checked column by column
(`all_pass`): each field of all its objects at once, in C (`map`, `set`, `compress`), which
costs a fraction of a walk element by element. Only a list that does not pass that way is
walked element by element, to name the first wrong field; `all_pass` answers True only for
values `check` accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import compress, repeat
from operator import is_not
from typing import Any

__all__ = [
    "BOOL",
    "COLUMNS_FROM",
    "INT",
    "LIST",
    "NUMBER",
    "OBJECT",
    "STRING",
    "Bad",
    "Checker",
    "Rule",
    "all_of_type",
    "checked",
    "column",
    "described",
    "one_of",
    "those",
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
        return all(checked(self, value) is None for value in values)

    def column_passes(self, column: list[Any]) -> bool:
        """Whether every value of one field of many objects passes, None standing for the
        field's absence."""
        return self.all_pass(_present(column))

    def __call__(self, value: Any) -> Bad | None:
        return self.check(value)


def checked(rule: Rule, value: Any) -> Bad | None:
    """`rule` applied to `value` through its `by_type`, as containers do inline."""
    inner = rule.by_type.get(type(value), rule.check)
    return None if inner is None else inner(value)


def all_of_type(values: list[Any], kind: type) -> bool:
    return set(map(type, values)) <= {kind}


def column(values: list[dict[str, Any]], name: str) -> list[Any]:
    """The field `name` of each object, None where it is absent."""
    return list(map(dict.get, values, repeat(name)))


def _present(values: list[Any]) -> list[Any]:
    return list(compress(values, map(is_not, values, repeat(None))))


def those(
    values: list[Any], keys: list[Any], key: Any, test: Callable[[Any, Any], Any]
) -> list[Any]:
    """The values whose key passes `test` against `key` (`is_` for types, `eq` for strings)."""
    return list(compress(values, map(test, keys, repeat(key))))


# A list this long is checked column by column before it is walked element by element.
COLUMNS_FROM = 8


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
        return all_of_type(values, str) and set(values) <= self.allowed

    def column_passes(self, column: list[Any]) -> bool:
        return set(map(type, column)) <= _STRING_OR_ABSENT and set(column) <= self.or_absent
