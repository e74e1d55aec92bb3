"""Grid files: load a YAML grid, check it against its notebook, expand it into runs.

Format (full description in ``experiments/README.md``)::

    name: exactness-sizes          # optional, default: the file's stem; names runs/<name>/
    description: free text         # optional
    notebook: ../book/exactness.ipynb   # relative to this file, else to the repository root
    parameters: {epochs: 10}       # fixed parameters
    axes:                          # swept: cartesian product, in the order written
      input_size: [28, 29, 33]
      model: [p4cnn, z2cnn]
    seeds: 3                       # seeds 1, 2, 3 (or a list [0, 7]); each combination once per seed, as the
                                   # notebook's `seed` (or as `seeds: [s]` for a notebook with `seeds` only)
    profile: book                  # default profile; --profile / $EQUIV_PROFILE as fallbacks
    results: ../data/results/exactness-sizes   # optional: commit each done run there (see equiv.batch.committed)
    profiles:                      # optional per-profile overrides
      smoke: {parameters: {epochs: 1}, axes: {input_size: [28]}, seeds: 1}
    slurm: {partition: gpu, gpus_per_run: 1, cpus_per_run: 4, time_limit_min: 60, array_parallelism: 8, mem_gb: 16}

Every check happens in :func:`load_grid`, before anything runs, and fails with a one-line
:class:`GridError` (a ``ValueError``) that names the bad key or value and what is allowed.

Limits, checked before anything is expanded or written:

- the number of runs (the product of the axis lengths and the number of seeds, counted without
  listing them) is at most ``max_runs`` (default :data:`MAX_RUNS`; ``equiv run --max-runs N``
  raises it, up to :data:`MAX_RUNS_CEILING`); seeds are ints from 0 to :data:`MAX_SEED`;
- the YAML is read with :class:`GridLoader`, a ``yaml.SafeLoader`` that refuses, while composing,
  more than :data:`MAX_YAML_ALIASES` alias references, alias use that expands to more than
  :data:`MAX_YAML_NODES` values ("billion laughs"), recursive aliases, and nesting deeper than
  :data:`MAX_YAML_DEPTH` levels.
"""

from __future__ import annotations

import ast
import json
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from equiv.batch.metrics import PROFILE_ENV
from equiv.batch.runid import canonical_json, run_id
from equiv.seeds import MAX_SEED as _SEEDS_MAX
from equiv.validation import KindError, coerce, conforms, is_int, kind_of

__all__ = [
    "GridError",
    "Grid",
    "RunSpec",
    "load_grid",
    "notebook_parameter_types",
    "ALLOWED_KEYS",
    "SLURM_KEYS",
    "SEED_PARAMETER",
    "PROFILE_PARAMETER",
    "MAX_RUNS",
    "MAX_RUNS_CEILING",
    "MAX_SEED",
    "MAX_YAML_ALIASES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "GridLoader",
    "YAMLLimitError",
    "check_max_runs",
    "count_runs",
]

ALLOWED_KEYS = ("name", "description", "notebook", "parameters", "axes", "seeds", "profile", "profiles", "slurm", "results")
PROFILE_KEYS = ("parameters", "axes", "seeds")
# slurm: key -> (accepted types, smallest value)
SLURM_KEYS: dict[str, tuple[str, float | None]] = {  # key: (kind (equiv.validation), least value or None)
    "partition": ("str", None),
    "gpus_per_run": ("int", 0),
    "cpus_per_run": ("int", 1),
    "time_limit_min": ("int", 1),
    "array_parallelism": ("int", 1),
    "mem_gb": ("float", 0),  # an int or a float
}
SEED_PARAMETER = "seed"  # the notebook parameter that receives each value of `seeds`
SEEDS_PARAMETER = "seeds"  # ... or, for a notebook without `seed`, this one, as a one-seed list [s]
PROFILE_PARAMETER = "profile"  # injected with the run's profile when the notebook declares it
MAX_RUNS = 10_000  # runs a grid may have unless --max-runs says more
MAX_RUNS_CEILING = 1_000_000  # the most --max-runs accepts (every run is planned in memory)
MAX_SEED = _SEEDS_MAX  # the largest seed (equiv.seeds: numpy's seeding takes 0 .. 2**32 - 1)
MAX_YAML_ALIASES = 100  # alias references (*name) in one grid file
MAX_YAML_DEPTH = 50  # nesting levels of mappings and lists
MAX_YAML_NODES = 100_000  # values in the document once every alias is expanded
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TYPE_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict, "tuple": tuple}


class GridError(ValueError):
    """A grid file that cannot run; the message is one line naming the bad thing."""


class YAMLLimitError(yaml.YAMLError):
    """A YAML document over one of :class:`GridLoader`'s limits (one line naming the limit)."""


class GridLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that bounds what a small file can make it build, while it composes.

    At most :data:`MAX_YAML_ALIASES` alias references, :data:`MAX_YAML_NODES` values counting each
    alias as the whole node it stands for (so nested aliases cannot multiply a 400-byte file into
    a billion values), no alias inside the node it names, and :data:`MAX_YAML_DEPTH` levels of
    nesting (deeper files would exhaust Python's recursion limit). Raises :class:`YAMLLimitError`.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._values = 0
        self._anchored_sizes: dict[int, int] = {}  # id(anchored node) -> values it expands to

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > MAX_YAML_NODES:
            raise YAMLLimitError(
                f"the YAML expands to more than {MAX_YAML_NODES} values (aliases included) at line {mark.line + 1}; "
                f"at most {MAX_YAML_NODES} are allowed"
            )

    def _compose_alias(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        self._aliases += 1
        if self._aliases > MAX_YAML_ALIASES:
            raise YAMLLimitError(
                f"the YAML uses more than {MAX_YAML_ALIASES} alias references (*{event.anchor} at line "
                f"{event.start_mark.line + 1}); at most {MAX_YAML_ALIASES} are allowed"
            )
        node = super().compose_node(parent, index)
        size = self._anchored_sizes.get(id(node))
        if size is None:
            raise YAMLLimitError(
                f"alias *{event.anchor} at line {event.start_mark.line + 1} is inside the node it names; recursive aliases are not allowed"
            )
        self._count(size, event.start_mark)
        return node

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose one node, counting aliases, expanded values and depth."""
        if self.check_event(yaml.AliasEvent):
            return self._compose_alias(parent, index)
        event = self.peek_event()
        if self._depth >= MAX_YAML_DEPTH:
            raise YAMLLimitError(
                f"the YAML nests deeper than {MAX_YAML_DEPTH} levels at line {event.start_mark.line + 1}; "
                f"at most {MAX_YAML_DEPTH} are allowed"
            )
        before = self._values
        self._count(1, event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._anchored_sizes[id(node)] = self._values - before
        return node


def _read_yaml(source: str, grid_path: Path) -> Any:
    """The grid file's YAML, loaded with :class:`GridLoader`; every problem is one :class:`GridError` line."""
    try:
        text = grid_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise _fail(source, f"not UTF-8 text (byte {err.start}); a grid file is UTF-8 YAML") from None
    loader = GridLoader(text)
    try:
        return loader.get_single_data()
    except YAMLLimitError as err:
        raise _fail(source, str(err)) from None
    except yaml.YAMLError as err:
        first = " ".join(str(err).split())
        raise _fail(source, f"not valid YAML: {first}") from None
    except (RecursionError, MemoryError) as err:
        raise _fail(source, f"the YAML is too large or too deeply nested to load ({type(err).__name__})") from None
    finally:
        loader.dispose()


@dataclass(frozen=True)
class RunSpec:
    """One parameter combination: its id, position in the grid, and the parameters papermill injects."""

    run_id: str
    index: int
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Grid:
    """A checked, expanded grid."""

    name: str
    path: Path  # the YAML file
    notebook: Path  # absolute path of the notebook
    notebook_key: str  # the notebook path that enters the run id (see equiv.batch.runid)
    profile: str | None
    parameters: dict[str, Any]
    axes: dict[str, list[Any]]
    seeds: list[int] | None
    runs: tuple[RunSpec, ...]  # at most the max_runs given to load_grid
    slurm: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    #: the folder every done run is committed to (``results:``, resolved; None: not committed), per profile:
    #: runs of another profile than the grid's default go to ``<results>/<profile>/``
    results: Path | None = None


def _fail(source: str, msg: str) -> GridError:
    return GridError(f"{source}: {msg}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _repo_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return None


def _resolve_notebook(source: str, value: Any, grid_path: Path) -> tuple[Path, str]:
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, f"'notebook' must be a path to an .ipynb file, got {_short(value)}")
    grid_folder = grid_path.parent
    root = _repo_root(grid_folder)
    given = Path(value).expanduser()
    candidates = [given] if given.is_absolute() else [grid_folder / given] + ([root / given] if root else [])
    for cand in candidates:
        if cand.is_file():
            nb = cand.resolve()
            break
    else:
        where = " and ".join(str(c.parent) for c in candidates)
        raise _fail(source, f"notebook {value!r} not found (looked in {where})")
    if nb.suffix != ".ipynb":
        raise _fail(source, f"notebook {value!r} is not an .ipynb file")
    nb_root = _repo_root(nb.parent)  # the notebook's own repository: the key does not depend on where the grid lives
    if nb_root is not None:
        key = nb.relative_to(nb_root.resolve()).as_posix()
    else:
        key = Path(os.path.relpath(nb, grid_folder.resolve())).as_posix()
    return nb, key


def _results_folder(source: str, value: Any, grid_path: Path, default_profile: Any, chosen: str | None) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(source, f"'results' must be a folder path (relative to the grid file), got {_short(value)}")
    folder = (grid_path.parent / Path(value).expanduser()).resolve()
    if folder.exists() and not folder.is_dir():
        raise _fail(source, f"results folder {value!r} is a file; give a folder")
    if chosen is not None and chosen != default_profile:
        folder = folder / chosen
    return folder


def notebook_parameter_types(notebook: str | os.PathLike) -> dict[str, type | None]:
    """Parameters of the notebook's ``parameters``-tagged cell and the type each expects.

    The type comes from a builtin annotation (``n: int = 3``) or else from the default's literal
    value; ``None`` means "any" (default ``None`` or an expression that is not a literal). The cell is read
    with :mod:`ast`, not papermill, so that grids load where Jupyter is not installed (``--executor script``);
    the test suite checks that the answer is papermill's ``inspect_notebook`` for every notebook we ship.
    """
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"
             and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    source = cells[0].get("source", "")
    tree = ast.parse("".join(source) if isinstance(source, list) else source)
    out: dict[str, type | None] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, value = node.target.id, node.value
            annotation = ast.unparse(node.annotation).strip("'\"")
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value, annotation = node.targets[0].id, node.value, ""
        else:
            continue
        expected: type | None = _TYPE_NAMES.get(annotation)
        if expected is None:
            try:
                default = None if value is None else ast.literal_eval(value)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                default = None
            expected = None if default is None else type(default)
        if expected is set or expected is frozenset:
            expected = list
        out[name] = expected
    return out


def _check_json(source: str, where: str, value: Any) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(source, f"{where} is {value!r}; only finite numbers are allowed")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(source, f"{where}[{i}]", item)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(source, f"{where} has key {k!r}; mapping keys must be strings")
            _check_json(source, f"{where}.{k}", v)
        return
    raise _fail(source, f"{where} is {_short(value)} ({type(value).__name__}); allowed: null, bool, int, float, str, list, mapping")


def _coerce(source: str, where: str, value: Any, expected: type | None, notebook_key: str) -> Any:
    """Check ``value`` against the default's type; an int may go where a float is (made a float)."""
    kind = kind_of(expected)
    if expected is None or kind is None:  # no default, or complex, bytes, ...: cannot come from YAML and JSON; accept and let the notebook judge
        return value
    try:
        return coerce(value, kind)
    except KindError:
        allowed = "int or float" if expected is float else expected.__name__
        raise _fail(
            source,
            f"{where} = {_short(value)} is {type(value).__name__}, but the default in {notebook_key} is {expected.__name__} (allowed: {allowed})",
        ) from None


def _mapping(source: str, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, f"'{key}' must be a mapping of parameter name to value, got {_short(value)}")
    for name in value:
        if not isinstance(name, str):
            raise _fail(source, f"'{key}' has a parameter name {name!r} that is not a string")
    return dict(value)


def _seeds(source: str, where: str, value: Any) -> Sequence[int] | None:
    """The seeds as a sequence; a count stays a ``range``, so that a huge count costs nothing until counted."""
    if value is None:
        return None
    if is_int(value, numpy=False):
        if value < 1:
            raise _fail(source, f"{where} is {value}: the grid is empty; give a count >= 1 or a list of seeds")
        return range(1, value + 1)  # the one seed convention (equiv.seeds): a count n means seeds 1..n
    if isinstance(value, list):
        if not value:
            raise _fail(source, f"{where} is an empty list: the grid is empty; give a count >= 1 or a list of seeds")
        for s in value:
            if not is_int(s, numpy=False) or not 0 <= s <= MAX_SEED:
                raise _fail(source, f"{where} contains {_short(s)}; seeds must be ints from 0 to {MAX_SEED}")
        if len(set(value)) != len(value):
            seen: set[int] = set()
            dup = next(s for s in value if s in seen or seen.add(s))
            raise _fail(source, f"{where} repeats seed {dup}")
        return list(value)
    raise _fail(source, f"{where} must be a count (int >= 1) or a list of ints, got {_short(value)}")


def _seed_count(seeds: Sequence[int] | None) -> int:
    if seeds is None:
        return 1
    if isinstance(seeds, range):  # len() of a range overflows past sys.maxsize
        return max(0, seeds.stop - seeds.start)
    return len(seeds)


def count_runs(axes: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None) -> int:
    """How many runs ``axes`` x ``seeds`` expand to, by arithmetic (nothing is listed)."""
    return math.prod(len(values) for values in axes.values()) * _seed_count(seeds)


def check_max_runs(max_runs: Any) -> int:
    """``max_runs`` if it is a whole number from 1 to :data:`MAX_RUNS_CEILING`, else ``ValueError`` (one line)."""
    if not is_int(max_runs, numpy=False) or not 1 <= max_runs <= MAX_RUNS_CEILING:
        raise ValueError(f"--max-runs {max_runs!r} is not allowed (a whole number from 1 to {MAX_RUNS_CEILING})")
    return max_runs


def _check_size(source: str, axes: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None, max_runs: int) -> None:
    count = count_runs(axes, seeds)
    if count <= max_runs:
        return
    factors = [f"{name}: {len(values)}" for name, values in axes.items()]
    if seeds is not None:
        factors.append(f"seeds: {_seed_count(seeds)}")
    shape = " x ".join(factors)
    if count > MAX_RUNS_CEILING:
        raise _fail(source, f"the grid has {count} runs ({shape}), more than {MAX_RUNS_CEILING}, the most --max-runs allows; make it smaller")
    raise _fail(source, f"the grid has {count} runs ({shape}), more than the limit of {max_runs}; pass --max-runs {count} to run them all")


def _axes(source: str, where: str, value: Any) -> dict[str, list[Any]]:
    axes = _mapping(source, where, value)
    for name, values in axes.items():
        if not isinstance(values, list):
            raise _fail(
                source, f"axis '{name}' must be a list of values, got {_short(values)}; put a single value under 'parameters'"
            )
        if not values:
            raise _fail(source, f"axis '{name}' has no values: the grid is empty; give at least one value")
    return axes


def _slurm(source: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, f"'slurm' must be a mapping, got {_short(value)}")
    for key, val in value.items():
        if key not in SLURM_KEYS:
            raise _fail(source, f"unknown key {key!r} in 'slurm' (allowed: {', '.join(SLURM_KEYS)})")
        kind, least = SLURM_KEYS[key]
        if not conforms(val, kind) or (least is not None and val < least):
            wanted = ("int or float" if kind == "float" else kind) + (f" >= {least}" if least is not None else "")
            raise _fail(source, f"slurm.{key} = {_short(val)} is not allowed (expected {wanted})")
    return dict(value)


def _merge_profile(
    source: str, name: str, overlay: Any, parameters: dict, axes: dict, seeds: Sequence[int] | None
) -> tuple[dict, dict, Sequence[int] | None]:
    if not isinstance(overlay, dict):
        raise _fail(source, f"profiles.{name} must be a mapping with keys {', '.join(PROFILE_KEYS)}")
    for key in overlay:
        if key not in PROFILE_KEYS:
            raise _fail(source, f"unknown key {key!r} in profiles.{name} (allowed: {', '.join(PROFILE_KEYS)})")
    over_params = _mapping(source, f"profiles.{name}.parameters", overlay.get("parameters"))
    over_axes = _axes(source, f"profiles.{name}.axes", overlay.get("axes"))
    params = {k: v for k, v in parameters.items() if k not in over_axes} | over_params
    new_axes = {k: v for k, v in axes.items() if k not in over_params} | over_axes
    new_seeds = _seeds(source, f"profiles.{name}.seeds", overlay["seeds"]) if "seeds" in overlay else seeds
    return params, new_axes, new_seeds


def _value_key(value: Any) -> tuple[str, Any]:
    """A hashable stand-in for a checked JSON value: equal keys for values of one type that are equal."""
    if isinstance(value, (list, dict)):
        return type(value).__name__, canonical_json(value)
    return type(value).__name__, value


def _check_names(
    source: str,
    parameters: dict,
    axes: dict,
    seeds: Sequence[int] | None,
    declared: dict[str, type | None],
    notebook_key: str,
) -> tuple[dict, dict]:
    both = sorted(set(parameters) & set(axes))
    if both:
        raise _fail(source, f"'{both[0]}' is both a fixed parameter and an axis; give it in one place")
    for where, names in (("parameter", parameters), ("axis", axes)):
        for name in names:
            if name == PROFILE_PARAMETER:
                raise _fail(source, f"{where} '{name}' is set by the top-level 'profile' key (or --profile), not as a {where}")
            if name in (SEED_PARAMETER, _seed_target(declared)) and seeds is not None:
                raise _fail(source, f"{where} '{name}' conflicts with 'seeds'; give seeds in one place")
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise _fail(
                    source, f"{where} '{name}' is not defined in the parameters cell of {notebook_key} (defined: {known})"
                )
    if seeds is not None and _seed_target(declared) is None:
        raise _fail(source, f"'seeds' needs a '{SEED_PARAMETER}' (or '{SEEDS_PARAMETER}') parameter in the parameters cell of {notebook_key}")
    fixed = {}
    for name, value in parameters.items():
        _check_json(source, f"parameter '{name}'", value)
        fixed[name] = _coerce(source, f"parameter '{name}'", value, declared[name], notebook_key)
    swept: dict[str, list[Any]] = {}
    for name, values in axes.items():
        coerced = []
        for i, value in enumerate(values):
            _check_json(source, f"axis '{name}'[{i}]", value)
            coerced.append(_coerce(source, f"axis '{name}'[{i}]", value, declared[name], notebook_key))
        seen: set[tuple[str, Any]] = set()
        for value in coerced:
            key = _value_key(value)
            if key in seen:
                raise _fail(source, f"axis '{name}' repeats value {_short(value)}")
            seen.add(key)
        swept[name] = coerced
    if seeds is not None:  # every seed is an int: checking the first checks them all (and never walks a huge range)
        target = _seed_target(declared)
        if target == SEED_PARAMETER:
            _coerce(source, "seed", seeds[0], declared[SEED_PARAMETER], notebook_key)
    return fixed, swept


def _seed_target(declared: Mapping[str, Any]) -> str | None:
    """The notebook parameter each grid seed goes to: ``seed`` (the seed), else ``seeds`` (as ``[seed]``)."""
    if SEED_PARAMETER in declared:
        return SEED_PARAMETER
    return SEEDS_PARAMETER if SEEDS_PARAMETER in declared else None


def _expand(
    notebook_key: str, profile: str | None, fixed: dict, axes: dict, seeds: list[int] | None, inject_profile: bool,
    seed_target: str | None = SEED_PARAMETER,
) -> tuple[RunSpec, ...]:
    names = list(axes)
    runs = []
    for combo in itertools.product(*(axes[n] for n in names)):
        for seed in seeds if seeds is not None else [None]:
            params = dict(fixed)
            params.update(zip(names, combo))
            if seed is not None:
                params[seed_target or SEED_PARAMETER] = seed if seed_target != SEEDS_PARAMETER else [seed]
            if inject_profile:
                params[PROFILE_PARAMETER] = profile
            runs.append(RunSpec(run_id=run_id(notebook_key, params, profile), index=len(runs), parameters=params))
    return tuple(runs)


def load_grid(path: str | os.PathLike, profile: str | None = None, *, max_runs: int = MAX_RUNS) -> Grid:
    """Load, check and expand the grid file ``path``; raise :class:`GridError` on anything wrong.

    The profile is ``profile`` if given, else the grid's ``profile`` key, else ``$EQUIV_PROFILE``,
    else none. A grid with more than ``max_runs`` runs is refused before it is expanded.
    """
    check_max_runs(max_runs)
    grid_path = Path(path)
    source = grid_path.name
    if not grid_path.is_file():
        if grid_path.is_dir():
            raise GridError(f"grid file {str(grid_path)!r} is a folder; give a YAML grid file")
        raise GridError(f"grid file {str(grid_path)!r} not found")
    raw = _read_yaml(source, grid_path)
    if raw is None:
        raise _fail(source, "the grid file is empty; it needs at least a 'notebook' key")
    if not isinstance(raw, dict):
        raise _fail(source, f"the grid must be a mapping with keys {', '.join(ALLOWED_KEYS)}, got {type(raw).__name__}")
    for key in raw:
        if key not in ALLOWED_KEYS:
            raise _fail(source, f"unknown key {key!r} (allowed: {', '.join(ALLOWED_KEYS)})")
    if "notebook" not in raw:
        raise _fail(source, "missing key 'notebook' (the notebook to run, relative to this file or the repository)")

    name = raw.get("name", grid_path.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _fail(source, f"name {_short(name)} is not allowed (letters, digits, '_', '.', '-'; it names the runs folder)")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise _fail(source, f"'description' must be text, got {_short(description)}")

    chosen = profile if profile is not None else raw.get("profile")
    if chosen is None:
        chosen = os.environ.get(PROFILE_ENV) or None
    if chosen is not None and (not isinstance(chosen, str) or not _NAME_RE.match(chosen)):
        raise _fail(source, f"profile {_short(chosen)} is not allowed (letters, digits, '_', '.', '-')")

    notebook, notebook_key = _resolve_notebook(source, raw["notebook"], grid_path)
    results = _results_folder(source, raw.get("results"), grid_path, raw.get("profile"), chosen)
    try:
        declared = notebook_parameter_types(notebook)
    except Exception as err:  # a broken notebook file
        raise _fail(source, f"cannot read the parameters of {notebook_key}: {type(err).__name__}: {err}".splitlines()[0]) from None

    base_params = _mapping(source, "parameters", raw.get("parameters"))
    base_axes = _axes(source, "axes", raw.get("axes"))
    base_seeds = _seeds(source, "seeds", raw.get("seeds"))
    slurm = _slurm(source, raw.get("slurm"))
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise _fail(source, f"'profiles' must be a mapping of profile name to overrides, got {_short(profiles)}")

    inject_profile = PROFILE_PARAMETER in declared and chosen is not None
    if inject_profile:
        _coerce(source, f"profile {chosen!r}", chosen, declared[PROFILE_PARAMETER], notebook_key)
    # check every profile's overrides now, not only the chosen one
    for pname, overlay in profiles.items():
        if not isinstance(pname, str) or not _NAME_RE.match(pname):
            raise _fail(source, f"profile name {_short(pname)} is not allowed (letters, digits, '_', '.', '-')")
        p, a, s = _merge_profile(source, pname, overlay, base_params, base_axes, base_seeds)
        _check_names(source, p, a, s, declared, notebook_key)
    params, axes, seeds = base_params, base_axes, base_seeds
    if chosen is not None and chosen in profiles:
        params, axes, seeds = _merge_profile(source, chosen, profiles[chosen], params, axes, seeds)
    _check_size(source, axes, seeds, max_runs)
    seeds = None if seeds is None else list(seeds)
    fixed, swept = _check_names(source, params, axes, seeds, declared, notebook_key)
    runs = _expand(notebook_key, chosen, fixed, swept, seeds, inject_profile, _seed_target(declared))
    return Grid(
        name=name,
        path=grid_path.resolve(),
        notebook=notebook,
        notebook_key=notebook_key,
        profile=chosen,
        parameters=fixed,
        axes=swept,
        seeds=seeds,
        runs=runs,
        slurm=slurm,
        description=description,
        results=results,
    )
