"""A small, strict schema for host data: each key's type, range or pattern, every problem
found reported as {"loc", "type", "msg", "input"} (the shape settings.py words as one
line per problem). Strict: "80" is not a port, 1 is not True.

Plain functions rather than a validation library: the deploy checks a few dozen keys per
host, and importing one cost more controller time than the rest of a no-op's planning.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Check = Callable[[object, tuple], list]  # (value, location) -> problems


def _problem(loc: tuple, kind: str, message: str, value) -> list[dict]:
    return [{"loc": loc, "type": kind, "msg": message, "input": value}]


def integer(low: int | None = None, high: int | None = None) -> Check:
    def check(value, loc):
        if type(value) is not int:
            return _problem(loc, "int_type", "Input should be a valid integer", value)
        if low is not None and value < low:
            return _problem(loc, "greater_than_equal", f"Input should be greater than or equal to {low}", value)
        if high is not None and value > high:
            return _problem(loc, "less_than_equal", f"Input should be less than or equal to {high}", value)
        return []
    return check


def string(pattern: str | None = None) -> Check:
    matcher = re.compile(pattern) if pattern else None

    def check(value, loc):
        if type(value) is not str:
            return _problem(loc, "string_type", "Input should be a valid string", value)
        if matcher and (not matcher.search(value) or value.endswith("\n")):  # "$" allows a final \n
            return _problem(loc, "string_pattern_mismatch", f"String should match pattern '{pattern}'", value)
        return []
    return check


def boolean(value, loc):
    return [] if type(value) is bool else _problem(loc, "bool_type", "Input should be a valid boolean", value)


def number(value, loc):
    if type(value) in (str, int, float):
        return []
    return _problem(loc, "value_type", "Input should be a valid string or number", value)


def one_of(*choices: str) -> Check:
    shown = [repr(c) for c in choices]
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"

    def check(value, loc):
        return [] if value in choices and type(value) is str else _problem(
            loc, "literal_error", f"Input should be {listed}", value)
    return check


def optional(inner: Check) -> Check:
    return lambda value, loc: [] if value is None else inner(value, loc)


def either(*inners: Check) -> Check:
    """The first that fits; a value fitting none is reported once, as not a valid value."""
    def check(value, loc):
        if any(not inner(value, loc) for inner in inners):
            return []
        return _problem(loc, "union", "Not a valid value", value)
    return check


def list_of(inner: Check) -> Check:
    def check(value, loc):
        if type(value) is not list:
            return _problem(loc, "list_type", "Input should be a valid list", value)
        return [p for i, item in enumerate(value) for p in inner(item, (*loc, i))]
    return check


def dict_of(inner: Check) -> Check:
    def check(value, loc):
        if type(value) is not dict:
            return _problem(loc, "dict_type", "Input should be a valid dictionary", value)
        return [p for key, item in value.items()
                for p in (string()(key, (*loc, key)) or inner(item, (*loc, key)))]
    return check


def record(fields: dict[str, Check], required: tuple = ()) -> Check:
    """A dictionary of known fields (`required` ones present), each with its own check."""
    def check(value, loc):
        if type(value) is not dict:
            return _problem(loc, "dict_type", "Input should be a valid dictionary", value)
        problems = [p for name in required if name not in value
                    for p in _problem((*loc, name), "missing", "Field required", None)]
        for name, item in value.items():
            if name not in fields:
                problems += _problem((*loc, name), "extra_forbidden", "Unknown field: the fields are "
                                     + ", ".join(fields), item)
            else:
                problems += fields[name](item, (*loc, name))
        return problems
    return check


def validate(schema: dict[str, Check], values: dict) -> list[dict]:
    """Every problem of `values` against `schema`, unknown keys included, in key order."""
    problems = []
    for key, value in values.items():
        if key not in schema:
            problems += _problem((key,), "extra_forbidden", "Extra inputs are not permitted", value)
        else:
            problems += schema[key](value, (key,))
    return problems
