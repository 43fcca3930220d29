"""Rules: small composable checks of one JSON value's type and shape.

A rule's `check` takes a parsed JSON value and returns None when the value is acceptable,
or a `Bad`: the path to the first wrong field (built innermost first, and only on failure,
so an acceptable body allocates nothing) and what is wrong with it. `obj` checks only the
fields it names and lets every other field through; a `null` optional field counts as
absent. Pure: no I/O, no state, and a rule never changes what it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


class Rule:
    """A check of one value. `accepts` holds the exact types that pass it without a look
    inside: containers check those inline, which is most of what makes a 200 KB request
    cheap to check."""

    __slots__ = ("accepts",)

    def __init__(self, accepts: Iterable[type] = ()) -> None:
        self.accepts = frozenset(accepts)

    def check(self, value: Any) -> Bad | None:
        raise NotImplementedError

    def __call__(self, value: Any) -> Bad | None:
        return self.check(value)


class _Typed(Rule):
    __slots__ = ("expected",)

    def __init__(self, expected: str, *accepts: type) -> None:
        super().__init__(accepts)
        self.expected = expected

    def check(self, value: Any) -> Bad | None:
        if type(value) in self.accepts:
            return None
        return Bad(f"expected {self.expected}, got {described(value)}")


class _NonNegativeInt(Rule):
    __slots__ = ()

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


class one_of(Rule):  # lower case: read as a rule, like the constants beside it
    """A string among `choices`."""

    __slots__ = ("allowed", "listed")

    def __init__(self, *choices: str) -> None:
        super().__init__()
        self.allowed = frozenset(choices)
        self.listed = ", ".join(choices)

    def check(self, value: Any) -> Bad | None:
        if type(value) is str and value in self.allowed:
            return None
        if type(value) is str:
            return Bad(f"expected one of {self.listed}")
        return Bad(f"expected one of {self.listed}, got {described(value)}")


Checker = Callable[[Any], "Bad | None"]


class obj(Rule):
    """An object whose named fields follow their rules; others are not looked at."""

    __slots__ = ("needed", "table")

    def __init__(self, fields: Mapping[str, Rule], required: Iterable[str] = ()) -> None:
        super().__init__()
        self.table = {name: (rule.accepts, rule.check) for name, rule in fields.items()}
        self.needed = tuple(required)

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
            if entry is None or item is None or type(item) in entry[0]:
                continue
            bad = entry[1](item)
            if bad is not None:
                return bad.at(name)
        return None


class list_of(Rule):
    __slots__ = ("item_accepts", "item_check")

    def __init__(self, item: Rule) -> None:
        super().__init__()
        self.item_accepts, self.item_check = item.accepts, item.check

    def check(self, value: Any) -> Bad | None:
        if type(value) is not list:
            return Bad(f"expected a list, got {described(value)}")
        accepts, check = self.item_accepts, self.item_check
        for index, element in enumerate(value):
            if type(element) in accepts:
                continue
            bad = check(element)
            if bad is not None:
                return bad.at(index)
        return None


class either(Rule):
    """A value that may be a string, a list or an object, each with a rule of its own."""

    __slots__ = ("expected", "rules")

    def __init__(
        self, text: Rule | None = None, items: Rule | None = None, mapping: Rule | None = None
    ) -> None:
        branches = ((str, text, "a string"), (list, items, "a list"), (dict, mapping, "an object"))
        self.rules: dict[type, Checker] = {t: r.check for t, r, _ in branches if r is not None}
        super().__init__(t for t, r, _ in branches if r is not None and t in r.accepts)
        self.expected = " or ".join(name for _, r, name in branches if r is not None)

    def check(self, value: Any) -> Bad | None:
        rule = self.rules.get(type(value))
        if rule is None:
            return Bad(f"expected {self.expected}, got {described(value)}")
        return rule(value)


class tagged(Rule):
    """An object told apart by its `type`: a known type follows its case; a type ending in
    one of `open_suffixes` is any object (a family new members join); any other is refused."""

    __slots__ = ("cases", "known", "open_suffixes")

    def __init__(self, cases: Mapping[str, Rule], open_suffixes: tuple[str, ...] = ()) -> None:
        super().__init__()
        # An object case skips its own is-it-an-object test: that was just made here.
        self.cases: dict[str, Checker] = {
            kind: rule.fields if isinstance(rule, obj) else rule.check
            for kind, rule in cases.items()
        }
        self.known = ", ".join(cases)
        self.open_suffixes = open_suffixes

    def check(self, value: Any) -> Bad | None:
        if type(value) is not dict:
            return Bad(f"expected an object, got {described(value)}")
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
