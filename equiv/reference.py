"""The paper's own numbers, and paper-scale tables collected from batch runs, next to ours.

Two kinds of committed data live under ``data/`` in the checkout:

- ``data/reference/rotmnist_official_runs.csv``: every run of the official rotated-MNIST experiment
  (880 runs × 36 test angles, parsed from the official training logs; see ``data/reference/README.md``).
  :func:`load_reference` reads it, :func:`headline_table` turns it — or any table of ours with the same
  columns — into the paper's headline table.
- ``data/results/<experiment>_<profile>.csv``: paper-scale tables of our own, collected by
  ``equiv results`` from batch runs of the book's notebooks (see ``data/results/README.md``).
  :func:`load_collected` reads one, or returns None when it does not exist (yet).

The headline numbers, per (train_rotation, group, input_size), over seeds:

- ``acc_0``: accuracy on the upright test set;
- ``acc_right_angles``: mean accuracy over the test set rotated by 0°, 90°, 180° and 270°;
- ``acc_all_angles``: mean accuracy over all test angles of the sweep (0°, 10°, …, 350°: 36 in the paper);

each as mean and standard deviation over seeds. The paper's ± is the *population* standard deviation
(``ddof=0``, numpy's default): it reproduces every ± of the paper's table (with ``ddof=1`` the P4-27 column
would read 2.87 instead of 2.85). Per-run numbers come from :func:`equiv.evaluation.summarize_sweep`, so
the reference and our runs are summarised by one definition.

Data directory: ``$EQUIV_DATA_DIR`` if set, else ``data/`` of the source checkout that holds this package.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pandas as pd

from equiv.evaluation import summarize_sweep
from equiv.settings import DATA_DIR_ENV

__all__ = [
    "REFERENCE_FILE",
    "RUN_KEYS",
    "REQUIRED_COLUMNS",
    "METRICS",
    "data_dir",
    "reference_path",
    "load_reference",
    "per_run_summary",
    "headline_table",
    "format_headline",
    "headline_comparison",
    "right_angle_spread",
    "model_label",
    "label_models",
    "beside_reference",
    "collected_path",
    "load_collected",
]

REFERENCE_FILE = "rotmnist_official_runs.csv"
#: the columns identifying one training run (one row per test angle below them)
RUN_KEYS = ("train_rotation", "group", "input_size", "seed")
REQUIRED_COLUMNS = (*RUN_KEYS, "test_angle", "accuracy")
#: the three numbers of the headline table, in its column order
METRICS = ("acc_0", "acc_right_angles", "acc_all_angles")
METRIC_TITLES = {"acc_0": "acc @0°", "acc_right_angles": "mean @0/90/180/270°", "acc_all_angles": "mean over all angles"}
_DATA_ENV = DATA_DIR_ENV


def data_dir() -> Path:
    """``$EQUIV_DATA_DIR`` if set, else the ``data/`` folder of the source checkout holding ``equiv``.

    Raises FileNotFoundError (saying where it looked) when neither exists, e.g. for an installed wheel.
    """
    env = os.environ.get(_DATA_ENV)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise FileNotFoundError(f"${_DATA_ENV} = {env!r} is not a directory")
        return path
    checkout = Path(__file__).resolve().parents[1]
    path = checkout / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"no data folder at {path}: equiv is not running from a source checkout. Set ${_DATA_ENV} to a "
            "folder holding reference/ (and results/), e.g. the data/ folder of a clone of the repository")
    return path


def reference_path(path: str | os.PathLike | None = None) -> Path:
    """The reference CSV: ``path`` if given, else ``<data_dir>/reference/rotmnist_official_runs.csv``."""
    target = Path(path) if path is not None else data_dir() / "reference" / REFERENCE_FILE
    if not target.is_file():
        raise FileNotFoundError(
            f"the paper's reference runs are not at {target}; copy {REFERENCE_FILE} and its README.md into "
            f"data/reference/ of the checkout (or set ${_DATA_ENV})")
    return target


def _check_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")


def load_reference(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The official rotated-MNIST runs, one row per (run, test angle); ``attrs['source']`` names the file."""
    target = reference_path(path)
    frame = pd.read_csv(target)
    _check_columns(frame, (*REQUIRED_COLUMNS, "planes"), f"reference file {target}")
    frame.attrs["source"] = str(target)
    return frame


def per_run_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (``RUN_KEYS``) with ``acc_0``, ``acc_right_angles``, ``acc_all_angles`` and ``n_angles``.

    ``frame`` is a per-angle table: the reference CSV or our ``rotated_mnist`` ``accuracy`` table.
    Every run must include 0°, 90°, 180° and 270° (ValueError otherwise, naming the run).
    """
    _check_columns(frame, REQUIRED_COLUMNS, "per-angle accuracy table")
    if frame.empty:
        raise ValueError("per-angle accuracy table is empty")
    rows = []
    for key, run in frame.groupby(list(RUN_KEYS), sort=True):
        sweep = pd.DataFrame({"angle": run["test_angle"].astype(float).to_numpy(),
                              "accuracy": run["accuracy"].astype(float).to_numpy()})
        try:
            numbers = summarize_sweep(sweep)
        except ValueError as err:
            raise ValueError(f"run {dict(zip(RUN_KEYS, key))}: {err}") from None
        rows.append({**dict(zip(RUN_KEYS, key)), **numbers, "n_angles": int(sweep["angle"].nunique())})
    return pd.DataFrame(rows)


def headline_table(frame: pd.DataFrame, *, ddof: int = 0) -> pd.DataFrame:
    """The paper's headline table from a per-angle table: one row per (train_rotation, group, input_size).

    Columns: ``n_seeds``, ``n_angles`` and ``<metric>_mean`` / ``<metric>_std`` for each of :data:`METRICS`
    (percent). ``ddof=0`` (population std) is the paper's convention; with one seed the std is 0.
    """
    runs = per_run_summary(frame)
    keys = [k for k in RUN_KEYS if k != "seed"]
    grouped = runs.groupby(keys, sort=False)
    out = grouped.agg(n_seeds=("seed", "nunique"), n_angles=("n_angles", "min")).reset_index()
    for m in METRICS:
        out[f"{m}_mean"] = grouped[m].mean().to_numpy()
        out[f"{m}_std"] = grouped[m].std(ddof=ddof).fillna(0.0).to_numpy()
    order = {"upright": 0, "normal45_sd20": 1, "normal45_sd40": 2, "uniform": 3}
    out = out.sort_values(["train_rotation", "group", "input_size"],
                          key=lambda s: s.map(order).fillna(9) if s.name == "train_rotation" else s)
    return out.reset_index(drop=True)


@lru_cache(maxsize=64)
def model_label(group: str, input_size: int, model: str = "p4cnn") -> str:
    """``"P4 exact (28)"``, ``"P4 approx (27)"``, ``"Z2 CNN (28)"``: exactness from :func:`equiv.exactness.check`."""
    if group == "z2":
        return f"Z2 CNN ({input_size})"
    from equiv.exactness import check
    from equiv.models import build

    exact = check(build(model, group=group), int(input_size), group).exact
    return f"{group.upper()} {'exact' if exact else 'approx'} ({input_size})"


def label_models(frame: pd.DataFrame, model: str = "p4cnn") -> pd.DataFrame:
    """``frame`` (any table with ``group`` and ``input_size``) with a column ``model``: :func:`model_label`."""
    _check_columns(frame, ("group", "input_size"), "table to label")
    return frame.assign(model=[model_label(g, int(s), model) for g, s in zip(frame["group"], frame["input_size"])])


def beside_reference(ours: pd.DataFrame, reference: pd.DataFrame, *, ours_label: str = "ours",
                     reference_label: str = "paper") -> pd.DataFrame:
    """The reference's per-angle rows of the training regimes that ``ours`` has, then ours, in one table with a
    column ``source`` (``reference_label`` / ``ours_label``) and the ``model`` labels of :func:`label_models`."""
    _check_columns(ours, REQUIRED_COLUMNS, "our per-angle accuracy table")
    _check_columns(reference, REQUIRED_COLUMNS, "reference per-angle accuracy table")
    regimes = list(dict.fromkeys(ours["train_rotation"]))
    both = pd.concat([reference[reference["train_rotation"].isin(regimes)].assign(source=reference_label),
                      ours.assign(source=ours_label)], ignore_index=True)
    return label_models(both)


def format_headline(table: pd.DataFrame, *, decimals: int = 2) -> pd.DataFrame:
    """:func:`headline_table` as text, ``"97.69 ± 0.17"`` per cell (no ± for a single seed), one row per model."""
    out = pd.DataFrame({"train_rotation": table["train_rotation"], "model": label_models(table)["model"],
                        "seeds": table["n_seeds"]})
    for m in METRICS:
        out[METRIC_TITLES[m]] = [f"{a:.{decimals}f}" + (f" ± {b:.{decimals}f}" if n > 1 else "")
                                 for a, b, n in zip(table[f"{m}_mean"], table[f"{m}_std"], table["n_seeds"])]
    return out.reset_index(drop=True)


def headline_comparison(ours: pd.DataFrame, reference: pd.DataFrame, *, decimals: int = 2,
                        ours_label: str = "ours", reference_label: str = "paper") -> pd.DataFrame:
    """Our headline numbers beside the paper's for the (train_rotation, model) pairs that we ran.

    ``ours`` and ``reference`` are per-angle tables. Returns a text table indexed by (train_rotation, model)
    with a two-level column header (metric, source); the ``seeds`` column counts seeds per source.
    """
    ours_t = headline_table(ours)
    keys = ["train_rotation", "group", "input_size"]
    ref_t = headline_table(reference).merge(ours_t[keys], on=keys, how="inner")
    parts = []
    for label, table in ((reference_label, ref_t), (ours_label, ours_t)):
        text = format_headline(table, decimals=decimals).set_index(["train_rotation", "model"])
        text.columns = pd.MultiIndex.from_product([text.columns, [label]])
        parts.append(text)
    both = parts[0].join(parts[1], how="right")
    columns = ["seeds", *(METRIC_TITLES[m] for m in METRICS)]
    return both[[(c, s) for c in columns for s in (reference_label, ours_label)]].fillna("—")


def right_angle_spread(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run: max − min of the accuracies at 0°, 90°, 180° and 270° (0 for an exactly invariant network)."""
    _check_columns(frame, REQUIRED_COLUMNS, "per-angle accuracy table")
    right = frame[frame["test_angle"].astype(float).isin([0.0, 90.0, 180.0, 270.0])]
    out = right.groupby(list(RUN_KEYS), sort=True)["accuracy"].agg(lambda s: float(s.max() - s.min()))
    counts = right.groupby(list(RUN_KEYS), sort=True)["test_angle"].nunique()
    if (counts < 4).any():
        bad = counts[counts < 4].index[0]
        raise ValueError(f"run {dict(zip(RUN_KEYS, bad))} lacks some of 0, 90, 180, 270 degrees")
    return out.rename("right_angle_spread").reset_index()


# ------------------------------------------------------------------------------------------ collected results
def collected_path(experiment: str, profile: str = "paper") -> Path:
    """Where ``equiv results`` output for ``experiment`` at ``profile`` is expected:
    ``<data_dir>/results/<experiment>_<profile>.csv``."""
    return data_dir() / "results" / f"{experiment}_{profile}.csv"


def load_collected(experiment: str, profile: str = "paper") -> pd.DataFrame | None:
    """The collected table of ``experiment`` at ``profile`` from ``data/results/``, or None if there is none.

    Only finished runs (``status == "done"``) are kept. ``equiv results`` renames a notebook's row field
    ``metric.<name>`` when ``<name>`` is also a run parameter; here the notebook's own value wins and gets
    its plain name back. ``attrs['source']`` names the file and ``attrs['profile']`` the profile.
    """
    try:
        path = collected_path(experiment, profile)
    except FileNotFoundError:
        return None
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if "status" in frame.columns:
        frame = frame[frame["status"] == "done"].copy()
    for col in [c for c in frame.columns if c.startswith("metric.")]:
        plain = col[len("metric."):]
        frame = frame.drop(columns=[plain], errors="ignore").rename(columns={col: plain})
    frame.attrs.update({"source": str(path), "profile": profile})
    return frame.reset_index(drop=True)
