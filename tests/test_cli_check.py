"""`equiv check` on the command line: reports, size sweeps and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from equiv.cli import main
from equiv.exactness_cli import parse_options, parse_sizes


def test_report_and_nearest_sizes(capsys) -> None:
    assert main(["check", "p4cnn", "--input-size", "27"]) == 1  # approximate
    out = capsys.readouterr().out
    assert "P4CNN at input 27x27, group p4: APPROXIMATELY equivariant (broken by pool)" in out
    assert "nearest exact sizes: below 26, above 28" in out


def test_size_sweep(capsys) -> None:
    assert main(["check", "resnet44", "--sizes", "31-33", "--group", "p4m", "-o", "width=2"]) == 1  # not all exact
    lines = capsys.readouterr().out.splitlines()
    verdicts = {int(line.split()[0]): line.split()[1] for line in lines[2:]}
    assert verdicts == {31: "approximate", 32: "approximate", 33: "exact"}


@pytest.mark.parametrize("argv,message", [
    (["check", "nonsense", "--input-size", "28"], "unknown model 'nonsense'"),
    (["check", "p4cnn", "--sizes", "40-30"], "--sizes must look like 20-40"),
    (["check", "p4cnn"], "give exactly one of --input-size N or --sizes A-B"),
    (["check", "p4cnn", "--input-size", "28", "--group", "p6"], "unknown group 'p6'"),
    (["check", "p4cnn", "--input-size", "2"], "input size 2x2 does not fit the model"),
])
def test_errors_are_one_line_with_exit_code_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_console_script_is_installed() -> None:
    done = subprocess.run([sys.executable, "-m", "equiv.cli", "check", "unequivariance_probe", "--input-size", "33"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "EXACTLY equivariant" in done.stdout


def test_parsers() -> None:
    assert parse_sizes("20-22,30") == [20, 21, 22, 30]
    assert parse_options(["width=8", "head=flatten", "dropout=0.5"]) == {"width": 8, "head": "flatten", "dropout": 0.5}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["width"])
