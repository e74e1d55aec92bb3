"""Parameters of the experiment runners: declared once, validated before any work, filled from a profile.

Every experiment declares its parameters as :class:`Param` objects with one default per profile:

- ``smoke``: seconds on a 2-core CPU, for tests and CI;
- ``book`` (the default): real data, a few minutes here, large enough that the paper's effect is visible;
- ``paper``: the official scale (full data, all epochs and seeds) — for a GPU or a cluster.

:func:`resolve` takes a plain dict (e.g. a notebook's papermill parameters), picks the profile
(``params["profile"]``, else the environment variable ``EQUIV_PROFILE``, else ``book``), and returns the
complete, checked parameter dict. Unknown keys, wrong types and impossible values raise ValueError with
one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from equiv.settings import PROFILES, per_profile, resolve_profile
from equiv.validation import KindError, coerce

__all__ = ["PROFILES", "MAX_INPUT_SIZE", "Param", "per_profile", "resolve", "resolve_profile", "check_model_sizes"]  # profiles: equiv.settings

#: the largest input side an experiment accepts: MNIST/CIFAR digits resized beyond it carry no new information,
#: and a batch of such images would not fit in memory on a laptop
MAX_INPUT_SIZE = 1024


@dataclass(frozen=True)
class Param:
    """One parameter: its type (``int``, ``float``, ``str``, ``bool``, ``list[int]``, ...), its per-profile
    defaults (a single value applies to every profile), allowed choices and an extra check."""

    name: str
    kind: str  # "int", "float", "str", "bool", "list[int]", "list[str]", "list[float]", "int|list[int]"
    default: Any
    doc: str = ""
    choices: Sequence[Any] | None = None
    check: Callable[[Any], bool] | None = None
    requirement: str = ""  # human wording of `check`, for the error message

    def default_for(self, profile: str) -> Any:
        if isinstance(self.default, Mapping) and set(self.default) == set(PROFILES):
            return self.default[profile]
        return self.default

    def validate(self, value: Any) -> Any:
        value = _coerce(self.name, self.kind, value)
        items = value if isinstance(value, list) else [value]
        if self.choices is not None:
            bad = [v for v in items if v not in self.choices]
            if bad:
                raise ValueError(f"parameter {self.name!r} has value {bad[0]!r}; allowed: "
                                 f"{', '.join(map(repr, self.choices))}")
        if isinstance(value, list) and not value:
            raise ValueError(f"parameter {self.name!r} must not be an empty list")
        if self.check is not None and not self.check(value):
            raise ValueError(f"parameter {self.name!r} = {value!r} is impossible; allowed: {self.requirement}")
        return value


def _coerce(name: str, kind: str, value: Any) -> Any:
    try:
        return coerce(value, kind)
    except KindError as err:
        raise ValueError(f"parameter {name!r} must be of type {err.kind}, got {err.value!r} ({type(err.value).__name__})") from None


def resolve(spec: Sequence[Param], params: Mapping[str, Any] | None, experiment: str) -> dict[str, Any]:
    """The complete parameter dict of ``experiment`` for ``params`` (checked; defaults from the profile)."""
    params = dict(params or {})
    if not isinstance(params, dict):
        raise ValueError(f"parameters of {experiment} must be a dict, got {type(params).__name__}")
    known = {p.name for p in spec} | {"profile"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} for {experiment}; allowed: {', '.join(sorted(known))}")
    profile = resolve_profile(params.pop("profile", None))
    out: dict[str, Any] = {"profile": profile}
    for p in spec:
        value = params[p.name] if p.name in params and params[p.name] is not None else p.default_for(profile)
        out[p.name] = p.validate(value) if value is not None else None
    return out


def check_model_sizes(param: str, items: Sequence[tuple[str, str, int]], build_model: Callable[[str], Any]) -> None:
    """Refuse, before any work, an input size outside ``1..MAX_INPUT_SIZE`` or too small for its model.

    ``items`` are ``(text, group, size)`` as the user wrote them (``text`` is named in the error);
    ``build_model(group)`` builds the model, which the exactness predictor traces once on a zero image (no
    training, milliseconds)."""
    from equiv.exactness import check

    for text, group, size in items:
        if not 1 <= size <= MAX_INPUT_SIZE:
            raise ValueError(f"parameter {param!r} has {text!r}: input size {size} is outside 1..{MAX_INPUT_SIZE}")
        try:
            check(build_model(group), size, group if group != "z2" else "p4")
        except ValueError as err:
            if "does not fit" not in str(err):
                raise
            raise ValueError(f"parameter {param!r} has {text!r}: input size {size} is too small for the model") from None
