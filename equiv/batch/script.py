"""Execute a notebook's code cells in a plain Python process: the ``script`` executor of ``equiv run``.

``equiv run --executor script`` runs each notebook without Jupyter: no kernel, no papermill, no ZeroMQ. It is
for machines that have the scientific stack but not the notebook one (a GPU image, a cluster node). The run is
the same run: same run id, same run folder, same ``metrics.json`` and committed result. A run done by either
executor is done for both. The manifest and the committed result record which executor ran it.

What it does, for the task's notebook (nbformat 4, a Python kernel):

1. Before any cell runs, it refuses what it cannot run, in one line naming the cell: a notebook that is not
   nbformat 4 or whose kernel is not Python, and IPython syntax (a line starting with ``%`` or ``!``).
2. It starts a fresh interpreter (``sys.executable -m equiv.batch.script``) in the notebook's folder, as
   papermill does, with the worker's environment (``EQUIV_RUN_DIR``, the thread counts).
3. That process executes the code cells in order in one namespace (``__name__ == "__main__"``). Right after
   the cell tagged ``parameters`` it assigns the run's parameters, read as data from a JSON file. They are
   never formatted into code. With ``cell_timeout``, a cell that runs longer raises ``TimeoutError``.
4. It writes the executed notebook: an ``injected-parameters`` cell after the parameters cell, each code cell's
   duration in ``metadata.equiv.duration``, and on failure an ``error`` output on the failing cell. Cells do
   not get outputs: nothing is displayed, and a cell's last expression is evaluated and dropped. What cells print
   on stdout goes to the worker's output (the run's ``worker.log``); their stderr is kept for the error message
   when the process dies outside a cell.
5. A failing cell fails the run with :class:`ScriptCellError`, which names the cell and the exception.
"""

from __future__ import annotations

import json
import linecache
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

from equiv.atomic_io import atomic_write_json
from equiv.batch.worker import die_with_parent

__all__ = ["ScriptCellError", "check_notebook", "script_execute", "main"]

_PARAMS_SUFFIX = ".params.json"
_ERROR_SUFFIX = ".error.json"


class ScriptCellError(RuntimeError):
    """A cell of a notebook run by the script executor raised: ``cell`` (0-based index among all cells),
    ``ename`` and ``evalue`` of its exception, ``traceback`` as text."""

    def __init__(self, notebook: str, cell: int, ename: str, evalue: str, traceback_text: str = "") -> None:
        super().__init__(f"{Path(notebook).name}, cell {cell}: {ename}: {evalue}")
        self.cell, self.ename, self.evalue, self.traceback_text = cell, ename, evalue, traceback_text


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def check_notebook(notebook: Mapping[str, Any], name: str) -> None:
    """One-line ``ValueError`` for a notebook the script executor cannot run (see the module docstring, step 1)."""
    if notebook.get("nbformat") != 4:
        raise ValueError(f"{name}: nbformat {notebook.get('nbformat')!r} is not supported by --executor script "
                         f"(allowed: 4)")
    language = (notebook.get("metadata", {}).get("kernelspec", {}).get("language")
                or notebook.get("metadata", {}).get("language_info", {}).get("name") or "python")
    if language != "python":
        raise ValueError(f"{name}: kernel language {language!r} cannot run under --executor script (allowed: python)")
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        for line in _source(cell).splitlines():
            if line.lstrip().startswith(("%", "!")):
                raise ValueError(f"{name}, cell {index}: IPython syntax {line.strip()!r} cannot run under "
                                 f"--executor script (use --executor papermill)")


def _injected_cell(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The record of the injected parameters, as papermill shows it (the values were assigned as data)."""
    lines = ["# Parameters (assigned from JSON by equiv's script executor)"]
    lines += [f"{key} = {value!r}" for key, value in parameters.items()]
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["injected-parameters"]},
            "outputs": [], "source": "\n".join(lines) + "\n"}


def script_execute(task: Any, output: Path) -> None:
    """Execute ``task``'s notebook as a script and write the executed notebook to ``output`` (the executor
    signature of :func:`equiv.batch.execute.execute_task`). Raises ``ValueError`` before anything runs for a
    notebook it cannot run, :class:`ScriptCellError` when a cell raises."""
    notebook_path = Path(task.notebook)
    check_notebook(json.loads(notebook_path.read_text(encoding="utf-8")), notebook_path.name)
    output = Path(output)
    params_file = output.with_name(output.name + _PARAMS_SUFFIX)
    error_file = output.with_name(output.name + _ERROR_SUFFIX)
    error_file.unlink(missing_ok=True)
    atomic_write_json(params_file, {"parameters": dict(task.parameters), "cell_timeout": task.cell_timeout,
                                    "parent_pid": os.getpid()})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "equiv.batch.script", str(notebook_path.resolve()), str(params_file.resolve()),
             str(output.resolve())],
            cwd=str(notebook_path.parent), env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=None,
            stderr=subprocess.PIPE, text=True, check=False)
        if proc.returncode == 0:
            return
        if error_file.is_file():
            err = json.loads(error_file.read_text(encoding="utf-8"))
            raise ScriptCellError(notebook_path.name, err["cell"], err["ename"], err["evalue"], err["traceback"])
        tail = (proc.stderr or "").strip().splitlines()[-20:]
        raise RuntimeError(f"{notebook_path.name}: the script process exited with status {proc.returncode}"
                           + (": " + tail[-1] if tail else "") + ("\n" + "\n".join(tail) if tail else ""))
    finally:
        params_file.unlink(missing_ok=True)
        error_file.unlink(missing_ok=True)


def _on_timeout(signum, frame) -> None:  # SIGALRM: raised inside the running cell
    raise TimeoutError("the cell ran longer than its --cell-timeout")


def main(argv: list[str] | None = None) -> int:
    """``python -m equiv.batch.script NOTEBOOK PARAMS_JSON OUTPUT``: the process :func:`script_execute` starts."""
    notebook_path, params_path, output = (Path(a) for a in (argv if argv is not None else sys.argv[1:]))
    nb = json.loads(notebook_path.read_text(encoding="utf-8"))
    spec = json.loads(params_path.read_text(encoding="utf-8"))
    parameters, cell_timeout = spec["parameters"], spec.get("cell_timeout")
    die_with_parent(int(spec["parent_pid"]))  # no run trains on for nobody
    if cell_timeout:
        signal.signal(signal.SIGALRM, _on_timeout)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    cells_out: list[dict[str, Any]] = []
    has_parameters_cell = any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.get("cells", []))
    if not has_parameters_cell:  # papermill injects at the top when no cell is tagged
        namespace.update(parameters)
        cells_out.append(_injected_cell(parameters))
    failure: dict[str, Any] | None = None
    sys.path.insert(0, str(notebook_path.parent))  # as a kernel started in the notebook's folder sees it
    for index, cell in enumerate(nb.get("cells", [])):
        cell = dict(cell)
        if cell.get("cell_type") != "code" or failure is not None:
            cells_out.append(cell)
            continue
        cell["outputs"], cell["execution_count"] = [], None
        started = time.perf_counter()
        try:
            filename = f"<{notebook_path.name} cell {index}>"
            source = _source(cell)
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # traceback lines
            code = compile(source, filename, "exec")
            if cell_timeout:
                signal.alarm(int(cell_timeout))
            try:
                exec(code, namespace)
            finally:
                if cell_timeout:
                    signal.alarm(0)
        except BaseException as err:  # the notebook's own exception, reported as a failed cell
            tb = err.__traceback__.tb_next or err.__traceback__  # from the cell's frame on, not this loop's
            text = "".join(traceback.format_exception(type(err), err, tb))
            failure = {"cell": index, "ename": type(err).__name__, "evalue": str(err), "traceback": text}
            cell["outputs"] = [{"output_type": "error", "ename": failure["ename"], "evalue": failure["evalue"],
                                "traceback": text.splitlines()}]
        cell.setdefault("metadata", {})
        cell["metadata"] = {**cell["metadata"], "equiv": {"duration": round(time.perf_counter() - started, 6)}}
        cells_out.append(cell)
        if "parameters" in cell["metadata"].get("tags", []) and failure is None:
            namespace.update(parameters)
            cells_out.append(_injected_cell(parameters))
    executed = {**nb, "cells": cells_out,
                "metadata": {**nb.get("metadata", {}), "equiv": {"executor": "script", "parameters": parameters}}}
    atomic_write_json(output, executed)
    if failure is not None:
        atomic_write_json(output.with_name(output.name + _ERROR_SUFFIX), failure)
        print(failure["traceback"], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
