"""Grid files: expansion, run ids, and every rejection (one line, naming the bad thing, before any run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from equiv.batch.grid import GridError, load_grid, notebook_parameter_types
from equiv.batch.runid import run_id
from equiv.cli import main
from grid_files import write_grid

TESTS = Path(__file__).resolve().parent
NOTEBOOKS = TESTS / "notebooks"
GRIDS = TESTS / "grids"


@pytest.fixture(autouse=True)
def _no_profile_env(monkeypatch):
    monkeypatch.delenv("EQUIV_PROFILE", raising=False)


def compute_grid(**extra) -> dict:
    return {"notebook": str(NOTEBOOKS / "compute.ipynb"), **extra}


def test_notebook_parameter_types_read_from_the_parameters_cell():
    assert notebook_parameter_types(NOTEBOOKS / "compute.ipynb") == {"x": float, "n": int, "label": str, "profile": str}
    assert notebook_parameter_types(NOTEBOOKS / "sleeps.ipynb") == {"seconds": float, "seed": int}


def test_expansion_is_the_cartesian_product_in_order_with_seeds_innermost(tmp_path):
    grid = load_grid(write_grid(tmp_path, compute_grid(parameters={"n": 3}, axes={"x": [1, 2.5], "label": ["a", "b"]})))
    assert [(r.parameters["x"], r.parameters["label"]) for r in grid.runs] == [(1.0, "a"), (1.0, "b"), (2.5, "a"), (2.5, "b")]
    assert all(r.parameters["n"] == 3 for r in grid.runs)
    assert type(grid.runs[0].parameters["x"]) is float  # an int given for a float default becomes a float
    assert grid.name == "grid" and grid.notebook_key == "tests/notebooks/compute.ipynb"
    assert len({r.run_id for r in grid.runs}) == 4

    sleeps = {"notebook": str(NOTEBOOKS / "sleeps.ipynb"), "axes": {"seconds": [0.1, 0.2]}, "seeds": 3}
    runs = load_grid(write_grid(tmp_path, sleeps, "s.yaml")).runs
    assert [(r.parameters["seconds"], r.parameters["seed"]) for r in runs] == [(s, k) for s in (0.1, 0.2) for k in (1, 2, 3)]
    listed = load_grid(write_grid(tmp_path, {**sleeps, "seeds": [7, 3]}, "l.yaml")).runs
    assert [r.parameters["seed"] for r in listed] == [7, 3, 7, 3]


def test_run_ids_are_stable_and_do_not_depend_on_the_grid_file(tmp_path):
    first = load_grid(GRIDS / "compute.yaml")
    # the same grid, moved elsewhere and reworded (notebook given by absolute path, int 1 as 1.0)
    moved = compute_grid(name="compute", parameters={"n": 3}, axes={"x": [1.0, 2.5], "label": first.axes["label"]}, profile="book")
    second = load_grid(write_grid(tmp_path, moved))
    assert [r.run_id for r in first.runs] == [r.run_id for r in second.runs]
    r = first.runs[0]
    assert r.run_id == run_id("tests/notebooks/compute.ipynb", r.parameters, "book")


def test_profile_is_injected_and_overlays_apply(tmp_path):
    book = load_grid(GRIDS / "compute.yaml")
    assert book.profile == "book" and all(r.parameters["profile"] == "book" for r in book.runs)
    smoke = load_grid(GRIDS / "compute.yaml", profile="smoke")
    assert smoke.profile == "smoke" and len(smoke.runs) == 2
    assert all(r.parameters["x"] == 0.5 and r.parameters["n"] == 1 and r.parameters["profile"] == "smoke" for r in smoke.runs)
    assert not {r.run_id for r in smoke.runs} & {r.run_id for r in book.runs}


def test_profile_falls_back_to_the_environment(tmp_path, monkeypatch):
    path = write_grid(tmp_path, compute_grid())
    assert load_grid(path).profile is None and "profile" not in load_grid(path).runs[0].parameters
    monkeypatch.setenv("EQUIV_PROFILE", "smoke")
    grid = load_grid(path)
    assert grid.profile == "smoke" and grid.runs[0].parameters["profile"] == "smoke"
    assert load_grid(path, profile="paper").profile == "paper"


def test_notebook_is_found_relative_to_the_repository(tmp_path):
    repo = tmp_path / "repo"
    (repo / "book").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    shutil.copy(NOTEBOOKS / "fails.ipynb", repo / "book" / "f.ipynb")
    (repo / "experiments").mkdir()
    grid = load_grid(write_grid(repo / "experiments", {"notebook": "book/f.ipynb"}))
    assert grid.notebook == (repo / "book" / "f.ipynb").resolve() and grid.notebook_key == "book/f.ipynb"


BAD = [
    ({"notebook": "nope.ipynb"}, "notebook 'nope.ipynb' not found"),
    (compute_grid(parameters={"epochs": 3}), "parameter 'epochs' is not defined in the parameters cell"),
    (compute_grid(axes={"depth": [1, 2]}), "axis 'depth' is not defined in the parameters cell"),
    (compute_grid(parameters={"n": "3"}), "parameter 'n' = '3' is str, but the default in tests/notebooks/compute.ipynb is int"),
    (compute_grid(parameters={"n": 2.5}), "parameter 'n' = 2.5 is float"),
    (compute_grid(parameters={"n": True}), "parameter 'n' = True is bool"),
    (compute_grid(axes={"x": [1, "big"]}), "axis 'x'[1] = 'big' is str, but the default in tests/notebooks/compute.ipynb is float (allowed: int or float)"),
    (compute_grid(axes={"x": []}), "axis 'x' has no values: the grid is empty"),
    (compute_grid(axes={"x": 1.0}), "axis 'x' must be a list of values"),
    (compute_grid(axes={"x": [1, 1.0]}), "axis 'x' repeats value 1.0"),
    (compute_grid(parameters={"x": 1.0}, axes={"x": [2.0]}), "'x' is both a fixed parameter and an axis"),
    (compute_grid(parameters={"profile": "smoke"}), "parameter 'profile' is set by the top-level 'profile' key"),
    (compute_grid(seeds=2), "'seeds' needs a 'seed' (or 'seeds') parameter in the parameters cell of tests/notebooks/compute.ipynb"),
    ({"notebook": str(NOTEBOOKS / "sleeps.ipynb"), "seeds": 0}, "seeds is 0: the grid is empty"),
    ({"notebook": str(NOTEBOOKS / "sleeps.ipynb"), "seeds": []}, "seeds is an empty list: the grid is empty"),
    ({"notebook": str(NOTEBOOKS / "sleeps.ipynb"), "seeds": [1, -2]}, "seeds contains -2"),
    (compute_grid(sweep={"x": [1]}), "unknown key 'sweep' (allowed: name, description, notebook"),
    (compute_grid(slurm={"partition": "gpu", "gpu": 1}), "unknown key 'gpu' in 'slurm'"),
    (compute_grid(slurm={"time_limit_min": 0}), "slurm.time_limit_min = 0 is not allowed"),
    (compute_grid(profiles={"smoke": {"parameters": {"epochs": 1}}}), "parameter 'epochs' is not defined"),
    (compute_grid(profiles={"smoke": {"steps": 1}}), "unknown key 'steps' in profiles.smoke"),
    (compute_grid(name="a/b"), "name 'a/b' is not allowed"),
    (compute_grid(profile="no spaces"), "profile 'no spaces' is not allowed"),
    ({"parameters": {"n": 1}}, "missing key 'notebook'"),
    ("notebook: [unclosed", "not valid YAML"),
    ("", "the grid file is empty"),
    (f"notebook: {NOTEBOOKS / 'compute.ipynb'}\nparameters: {{label: 2020-01-01}}\n", "parameter 'label' is datetime.date(2020, 1, 1) (date)"),
]


@pytest.mark.parametrize("body,message", BAD, ids=[m.split(" ")[0] + "-" + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_grids_are_rejected_with_one_line_naming_the_problem(tmp_path, body, message):
    with pytest.raises(GridError) as err:
        load_grid(write_grid(tmp_path, body))
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("grid.yaml: ") and message in text


def test_missing_grid_file_is_rejected(tmp_path):
    with pytest.raises(GridError, match="grid file .*missing.yaml' not found"):
        load_grid(tmp_path / "missing.yaml")


def test_cli_rejects_a_bad_grid_before_anything_runs(tmp_path, capsys):
    path = write_grid(tmp_path, compute_grid(axes={"x": [1, "big"]}))
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs-dir", str(runs), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("equiv run: error: grid.yaml: axis 'x'[1] = 'big'")
    assert not runs.exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--backend", "dask"], "--backend dask needs --scheduler"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler 'tcp://127.0.0.1:1' only applies to --backend dask"),
        (["--backend", "dask", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], "--jobs does not apply to --backend dask"),
    ],
)
def test_cli_rejects_bad_option_combinations(tmp_path, capsys, argv, message):
    runs = tmp_path / "runs"
    assert main(["run", str(GRIDS / "fails.yaml"), "--runs-dir", str(runs), *argv]) == 2
    out = capsys.readouterr()
    assert message in out.err
    assert "packing" not in out.out + out.err, "the packing was measured before the bad options were refused"
    assert not runs.exists()
