"""The one home of equiv's input checks: what counts as an int, a real number, a value of a declared kind.

Every check of a user's input in equiv (a layer's channels, a seed, a ``--jobs`` option, an experiment
parameter, a grid file's value) asks this module rather than spelling out ``isinstance`` tests of its
own, so that "an int" means the same thing everywhere:

- :func:`is_int`: a Python int or a numpy integer, never a bool (``True`` is an ``int`` to Python, but
  ``channels=True`` is a mistake, not ``1``) nor a numpy bool. ``numpy=False`` refuses numpy integers too,
  for values that go on to the standard library (``random.seed``), to JSON, or come from YAML/JSON where
  none can occur.
- :func:`is_real`, :func:`is_finite_real`: the same for numbers (ints and floats).
- :func:`conforms` / :func:`coerce`: a value against a *kind* string, the type language of the experiment
  parameters (:mod:`equiv.experiments.params`) and of the grid files (:mod:`equiv.batch.grid`, via
  :func:`kind_of` of the notebook default's type).

The error wording stays with the callers, one line naming the parameter, the value and what is allowed:
this module answers True/False, or raises :class:`KindError` carrying the offending value and kind (its
message is for debugging, no caller shows it).

Kinds (values as they come from JSON, YAML or papermill: numpy scalars are refused, except ``numpy.float64``,
which is a Python float):

- ``"int"``: an int (not a bool);
- ``"float"``: an int or a float (not a bool); :func:`coerce` returns a float;
- ``"str"``, ``"bool"``, ``"dict"``: a str, a bool, a dict;
- ``"str|null"``: a str or None;
- ``"list[K]"``: a list (or a tuple, made a list) whose items are of kind ``K``, itself any kind;
- ``"int|list[int]"``: an int, or else a ``list[int]``;
- ``"list"``: a list (or a tuple, made a list) of anything.
"""

from __future__ import annotations

import math
import sys
from typing import Any

__all__ = ["KINDS", "KindError", "is_int", "is_real", "is_finite_real", "conforms", "coerce", "kind_of"]

#: The kind strings :func:`coerce` knows; ``list[K]`` takes any of them (``list[...]`` nests).
KINDS = ("int", "float", "str", "bool", "str|null", "list[...]", "int|list[int]", "list", "dict")

#: The kind of the values that may stand where a default of this type stands (:func:`kind_of`).
_KIND_OF_TYPE: dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "list",
    tuple: "list",
    dict: "dict",
}


class KindError(ValueError):
    """``value`` is not of ``kind``: the innermost failure (for a list, the offending item and its kind)."""

    def __init__(self, value: Any, kind: str) -> None:
        super().__init__(f"{value!r} ({type(value).__name__}) is not of kind {kind}")
        self.value = value
        self.kind = kind


def _numpy_scalar(value: Any, names: tuple[str, ...]) -> bool:
    """Whether ``value`` is an instance of one of numpy's ``names`` scalar types.

    numpy is not imported for this: where it has not been imported, no value can be a numpy scalar, and the
    command-line tools stay free of it."""
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, tuple(getattr(np, name) for name in names))


def is_int(value: Any, *, numpy: bool = True) -> bool:
    """Whether ``value`` is an int that is not a bool: a Python int or (unless ``numpy=False``) a numpy integer."""
    if isinstance(value, int):
        return not isinstance(value, bool)
    return numpy and _numpy_scalar(value, ("integer",))


def is_real(value: Any, *, numpy: bool = True) -> bool:
    """Whether ``value`` is a real number: :func:`is_int`, a Python float or (unless ``numpy=False``) a numpy
    float; never a bool."""
    if isinstance(value, (int, float)):
        return not isinstance(value, bool)
    return numpy and _numpy_scalar(value, ("integer", "floating"))


def is_finite_real(value: Any, *, numpy: bool = True) -> bool:
    """Whether ``value`` is :func:`is_real` and finite (every int is, however large)."""
    if not is_real(value, numpy=numpy):
        return False
    return is_int(value, numpy=numpy) or math.isfinite(value)


def coerce(value: Any, kind: str) -> Any:
    """``value`` as a value of ``kind`` (see the module docstring), or :class:`KindError`.

    A ``"float"`` turns an int into a float and a list kind turns a tuple into a list; every other value is
    returned as it is. An unknown ``kind`` is a ``ValueError`` that is not a :class:`KindError` (a
    declaration bug, not a user's mistake)."""
    if kind == "int":
        if not is_int(value, numpy=False):
            raise KindError(value, kind)
        return value
    if kind == "float":
        if not is_real(value, numpy=False):
            raise KindError(value, kind)
        return float(value)
    if kind in ("str", "bool", "dict"):
        if not isinstance(value, {"str": str, "bool": bool, "dict": dict}[kind]):
            raise KindError(value, kind)
        return value
    if kind == "str|null":
        if value is not None and not isinstance(value, str):
            raise KindError(value, kind)
        return value
    if kind == "int|list[int]":
        return value if is_int(value, numpy=False) else coerce(value, "list[int]")
    if kind == "list" or (kind.startswith("list[") and kind.endswith("]")):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise KindError(value, kind)
        return value if kind == "list" else [coerce(item, kind[5:-1]) for item in value]
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")


def conforms(value: Any, kind: str) -> bool:
    """Whether :func:`coerce` accepts ``value`` as ``kind``."""
    try:
        coerce(value, kind)
    except KindError:
        return False
    return True


def kind_of(expected: type | None) -> str | None:
    """The kind of the values that may stand where a default of type ``expected`` stands (an int where a
    float is: ``"float"`` accepts ints), or None (anything: no default, or a type such as complex or bytes
    that YAML and JSON cannot give). Types are matched exactly, not by subclass."""
    return _KIND_OF_TYPE.get(expected) if expected is not None else None
