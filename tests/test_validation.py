"""equiv.validation: the one home of the int / real-number / kind checks, and a guard that it stays the only one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from equiv.validation import KindError, coerce, conforms, is_finite_real, is_int, is_real, kind_of

#: value -> (is_int, is_real)
TRUTH = [
    (True, False, False),
    (False, False, False),
    (np.bool_(True), False, False),
    (3, True, True),
    (-3, True, True),
    (np.int64(3), True, True),
    (np.uint8(3), True, True),
    (3.0, False, True),
    (np.float64(3.0), False, True),
    (np.float32(3.0), False, True),
    ("3", False, False),
    (None, False, False),
    ([3], False, False),
    (3j, False, False),
]


@pytest.mark.parametrize("value, integer, real", TRUTH)
def test_is_int_and_is_real_truth_table(value, integer, real) -> None:
    assert is_int(value) is integer
    assert is_real(value) is real


@pytest.mark.parametrize("value, integer, real", TRUTH)
def test_numpy_false_refuses_numpy_scalars_but_not_python_floats(value, integer, real) -> None:
    numpy_scalar = isinstance(value, np.generic) and not isinstance(value, float)  # np.float64 is a Python float
    assert is_int(value, numpy=False) is (integer and not numpy_scalar)
    assert is_real(value, numpy=False) is (real and not numpy_scalar)


@pytest.mark.parametrize("value, finite", [
    (0, True), (10**400, True), (np.int64(-2), True), (1.5, True), (np.float32(1.5), True),
    (float("inf"), False), (float("-inf"), False), (float("nan"), False), (np.float32("nan"), False),
    (True, False), ("1", False), (None, False),
])
def test_is_finite_real(value, finite) -> None:
    assert is_finite_real(value) is finite


@pytest.mark.parametrize("kind, value, expected", [
    ("int", 3, 3),
    ("float", 3, 3.0),
    ("float", 2.5, 2.5),
    ("str", "a", "a"),
    ("bool", False, False),
    ("str|null", None, None),
    ("str|null", "x", "x"),
    ("list[int]", [1, 2], [1, 2]),
    ("list[int]", (1, 2), [1, 2]),
    ("list[float]", [1, 2.5], [1.0, 2.5]),
    ("list[str]", [], []),
    ("list[list[int]]", [[1], (2, 3)], [[1], [2, 3]]),
    ("list[list[float]]", ([1],), [[1.0]]),
    ("list[str|null]", ["a", None], ["a", None]),
    ("int|list[int]", 4, 4),
    ("int|list[int]", (4, 5), [4, 5]),
    ("list", [1, "a"], [1, "a"]),
    ("list", (1, "a"), [1, "a"]),
    ("dict", {"a": 1}, {"a": 1}),
])
def test_coerce_accepts(kind, value, expected) -> None:
    out = coerce(value, kind)
    assert out == expected and type(out) is type(expected)
    if kind == "float":
        assert isinstance(out, float)
    assert conforms(value, kind)


@pytest.mark.parametrize("kind, value, bad_value, bad_kind", [
    ("int", True, True, "int"),
    ("int", 3.0, 3.0, "int"),
    ("int", np.int64(3), np.int64(3), "int"),
    ("int", "3", "3", "int"),
    ("float", False, False, "float"),
    ("float", "1.5", "1.5", "float"),
    ("float", None, None, "float"),
    ("str", 3, 3, "str"),
    ("bool", 1, 1, "bool"),
    ("bool", np.bool_(True), np.bool_(True), "bool"),
    ("str|null", 3, 3, "str|null"),
    ("list[int]", 3, 3, "list[int]"),
    ("list[int]", [1, True], True, "int"),
    ("list[list[int]]", [[1], ["a"]], "a", "int"),
    ("list[list[int]]", [[1], 2], 2, "list[int]"),
    ("int|list[int]", "a", "a", "list[int]"),
    ("int|list[int]", [1, 2.0], 2.0, "int"),
    ("list", {"a": 1}, {"a": 1}, "list"),
    ("dict", [1], [1], "dict"),
])
def test_coerce_refuses_with_the_innermost_value_and_kind(kind, value, bad_value, bad_kind) -> None:
    with pytest.raises(KindError) as err:
        coerce(value, kind)
    assert isinstance(err.value, ValueError)
    assert err.value.value is bad_value or err.value.value == bad_value
    assert err.value.kind == bad_kind
    assert not conforms(value, kind)


def test_an_unknown_kind_is_a_declaration_bug_not_a_kind_error() -> None:
    with pytest.raises(ValueError, match="unknown kind 'complex'") as err:
        coerce(1, "complex")
    assert not isinstance(err.value, KindError)


@pytest.mark.parametrize("tp, kind", [
    (bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (list, "list"), (tuple, "list"), (dict, "dict"),
    (complex, None), (bytes, None), (type(None), None), (None, None),
])
def test_kind_of_a_default_type(tp, kind) -> None:
    assert kind_of(tp) == kind


def test_kind_of_lets_an_int_stand_for_a_float_but_not_a_bool_for_an_int() -> None:
    assert coerce(3, kind_of(float)) == 3.0
    assert not conforms(True, kind_of(int))


# --- the guard ---------------------------------------------------------------------------------------------
#
# The rule: outside equiv/validation.py, no line of equiv/ may test a value against ``bool`` in one
# ``isinstance`` call and against an int type (``int``, ``np.integer``, ``numbers.Integral``) in another
# ``isinstance`` call on the same line: that is a hand-written "int that is not a bool", which is
# ``is_int`` / ``is_real``. Allowed: an ``isinstance(x, bool)`` on a line with no int check (a bool
# parameter, or refusing bools before a tensor conversion), and one ``isinstance`` naming both
# (``isinstance(v, (bool, int, str))`` accepts both, it is no int-not-bool check). Nor may a module define a
# private ``_is_int`` helper of its own.

_ISINSTANCE = re.compile(r"isinstance\((?:[^()]|\([^()]*\))*?,\s*(\([^()]*\)|[\w.]+)\s*\)")
_BOOL = re.compile(r"\bbool_?\b")
_INT = re.compile(r"\bint\b|\binteger\b|\bIntegral\b")
_OWN_HELPER = re.compile(r"^\s*def _is_int\b")


def _hand_written_int_check(line: str) -> bool:
    types = [m.group(1) for m in _ISINSTANCE.finditer(line)]
    bools = {i for i, t in enumerate(types) if _BOOL.search(t)}
    ints = {i for i, t in enumerate(types) if _INT.search(t)}
    return any(b != i for b in bools for i in ints) or bool(_OWN_HELPER.match(line))


@pytest.mark.parametrize("line", [
    "isinstance(x, int) and not isinstance(x, bool)",
    "if isinstance(x, bool) or not isinstance(x, int) or x < 1:",
    "if not isinstance(value, int) or isinstance(value, bool) or value < 1:",
    "ok = isinstance(v, (int, np.integer)) and not isinstance(v, bool)",
    "if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:",
    "if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):",
    "if isinstance(getattr(m, 'n'), bool) or not isinstance(getattr(m, 'n'), int):",
    "def _is_int(v: Any) -> bool:",
])
def test_the_guard_flags_hand_written_int_checks(line) -> None:
    assert _hand_written_int_check(line)


@pytest.mark.parametrize("line", [
    "if not isinstance(self.per_batch, bool):",
    "elif isinstance(v, bool):",
    "if isinstance(fill, bool):",
    "if value is None or isinstance(value, (bool, int, str)):",
    "if isinstance(degrees, bool) or (isinstance(degrees, torch.Tensor) and degrees.dtype == torch.bool):",
    "if not is_int(value, numpy=False) or value < 1:",
    "value = getattr(m, 'in_channels', None)",
])
def test_the_guard_allows_bool_checks_and_the_helpers(line) -> None:
    assert not _hand_written_int_check(line)


def test_no_hand_written_int_check_outside_equiv_validation() -> None:
    package = Path(__file__).resolve().parents[1] / "equiv"
    found = [
        f"{path.relative_to(package.parent)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "validation.py" or path.parent != package
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _hand_written_int_check(line)
    ]
    assert not found, "use equiv.validation.is_int / is_real instead of:\n" + "\n".join(found)
