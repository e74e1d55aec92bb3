"""The error policy: bad input is one line with exit status 2 before any work; a bug keeps its traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from equiv import cli
from equiv.atomic_io import atomic_write_json, atomic_write_text, file_mode
from equiv.experiments import run_experiment


def _with_func(monkeypatch, exc: BaseException):
    """Make `equiv check` raise ``exc`` from its implementation."""
    import equiv.exactness_cli as ec

    def boom(args):
        raise exc

    monkeypatch.setattr(ec, "_run", boom)


@pytest.mark.parametrize("exc,expected", [
    (ValueError("bad value 3; allowed: 1..2"), "equiv check: error: bad value 3; allowed: 1..2"),
    (KeyError("unknown thing 'x'"), "equiv check: error: unknown thing 'x'"),
    (NotADirectoryError(20, "Not a directory", "runs/file"), "equiv check: error: runs/file: Not a directory"),
    (IsADirectoryError(21, "Is a directory", "grid.yaml"), "equiv check: error: grid.yaml: Is a directory"),
    (PermissionError(13, "Permission denied", "/root/x"), "equiv check: error: /root/x: Permission denied"),
    (MemoryError(), "equiv check: error: out of memory; use smaller sizes"),
])
def test_user_errors_are_one_line_with_status_2(monkeypatch, capsys, exc, expected) -> None:
    _with_func(monkeypatch, exc)
    assert cli.main(["check", "p4cnn", "--input-size", "28"]) == cli.USAGE == 2
    err = capsys.readouterr().err
    assert err.strip() == expected


def test_a_bug_keeps_its_traceback_and_says_it_is_a_bug(monkeypatch, capsys) -> None:
    _with_func(monkeypatch, TypeError("unsupported operand"))
    assert cli.main(["check", "p4cnn", "--input-size", "28"]) == cli.BUG == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "TypeError: unsupported operand" in err
    assert err.strip().splitlines()[-1].startswith("equiv check: internal error (TypeError): this is a bug in equiv")


def test_an_input_size_that_cannot_fit_in_memory_is_refused_before_allocating() -> None:
    done = subprocess.run([sys.executable, "-m", "equiv.cli", "check", "p4cnn", "--input-size", "1000000"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "input size 1000000x1000000 needs about" in line and "GiB" in line


@pytest.mark.parametrize("params,message", [
    ({"configs": ["p4-28", "p4-0"]}, "parameter 'configs' has 'p4-0': input size 0 is outside 1..1024"),
    ({"configs": ["p4-28", "p4-5"]}, "parameter 'configs' has 'p4-5': input size 5 is too small for the model"),
    ({"configs": ["p4-28", "z2-100000"]}, "parameter 'configs' has 'z2-100000': input size 100000 is outside"),
])
def test_run_experiment_checks_every_config_before_training(monkeypatch, tmp_path, params, message) -> None:
    import importlib

    rm = importlib.import_module("equiv.experiments.rotated_mnist")  # the package re-exports a function of that name

    monkeypatch.setenv("EQUIV_RESULTS_CACHE", str(tmp_path))

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the parameters were checked")

    monkeypatch.setattr(rm, "fit", no_training)
    monkeypatch.setattr(rm, "mnist", no_training)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_experiment("rotated_mnist", {"profile": "smoke", **params})


@pytest.mark.parametrize("experiment,params,message", [
    ("classification_benchmark", {"sizes": [32, 4096]}, "parameter 'sizes' has '4096'"),
    ("layerwise_equivariance", {"configs": ["p4-28", "p4m-3"]}, "parameter 'configs' has 'p4m-3'"),
    ("learning_unequivariance", {"sizes": [33, 5000]}, "parameter 'sizes' has '5000'"),
])
def test_other_runners_check_sizes_before_work(monkeypatch, tmp_path, experiment, params, message) -> None:
    monkeypatch.setenv("EQUIV_RESULTS_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=message):
        run_experiment(experiment, {"profile": "smoke", **params})


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        assert file_mode() == 0o666 & ~umask
        for path, write in ((tmp_path / "a.txt", lambda p: atomic_write_text(p, "x")),
                            (tmp_path / "b.json", lambda p: atomic_write_json(p, {"a": 1}))):
            write(path)
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, oct(path.stat().st_mode)
            plain = tmp_path / f"plain-{path.name}"
            plain.write_text("x")
            assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    finally:
        os.umask(old)


def _bool_refusals():
    """Each library entry point that takes an int (or a number) refuses True, which Python counts as 1."""
    import torch

    from equiv import exactness, glyphs, metrics
    from equiv.models import build
    from equiv.models.e2cnn_backend import conv_basis_settings
    from equiv.train import fit

    model = build("p4cnn", group="p4", channels=2)
    x, y = torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)
    return [
        ("batch_size must be a positive int, got True", lambda: metrics.accuracy_vs_rotation(model, x, y, [0.0], batch_size=True)),
        ("size must be an int >= 8, got True", lambda: glyphs.glyph("F", size=True)),
        ("kernel_size must be a positive int, got True", lambda: conv_basis_settings("p4", True, lifting=True)),
        ("input_size must be an int or a pair", lambda: exactness.check(model, (28, True))),
        ("n must be a positive int, got True", lambda: exactness.nearest_exact_size(model, True)),
        ("weight_decay must be a number >= 0, got True", lambda: fit(model, None, epochs=1, weight_decay=True)),
    ]


@pytest.mark.parametrize("index", range(6))
def test_bools_are_not_ints_anywhere(index: int) -> None:
    message, call = _bool_refusals()[index]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()
