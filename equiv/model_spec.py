"""Models named on the command line: our own (``p4cnn``), or anyone's (``pkg.module:make``, ``net.py:Net``).

:func:`load_model` turns a model spec into an ``nn.Module``:

- a name of :mod:`equiv.models` (``p4cnn``, ``resnet44``, …) is built with :func:`equiv.models.build`, with the
  group and the options;
- ``MODULE:CALLABLE`` imports ``MODULE`` (a dotted name importable from the current folder or the
  installed packages) and calls ``CALLABLE(**options)``;
- ``path/to/file.py:CALLABLE`` loads that file (its folder is put first on ``sys.path`` while it loads, so
  it may import its neighbours) and calls ``CALLABLE(**options)``.

``CALLABLE`` may be a class, a factory function, or an ``nn.Module`` instance (then no options may be
given); it may be a dotted attribute path (``models:Zoo.small``). Every failure — a file that does not
exist, a module that raises on import, a missing attribute, a call that raises, a result that is not an
``nn.Module`` — is one :class:`ModelSpecError` line naming the spec.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["ModelSpecError", "is_external", "load_model"]


class ModelSpecError(ValueError):
    """A model spec that cannot be imported, found or built."""


def is_external(spec: str) -> bool:
    """True for ``MODULE:CALLABLE`` and ``file.py:CALLABLE`` specs (not a name of :mod:`equiv.models`)."""
    return ":" in spec


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _import(target: str, spec: str) -> Any:
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise ModelSpecError(f"model {spec!r}: no such file {target!r}")
        name = f"_equiv_user_model_{uuid.uuid4().hex[:8]}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ModelSpecError(f"model {spec!r}: {target!r} cannot be loaded as a Python file")
        module = importlib.util.module_from_spec(loader_spec)
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:
            sys.modules.pop(name, None)
            raise ModelSpecError(f"model {spec!r}: importing {target} failed: {_first_line(err)}") from err
        finally:
            if folder in sys.path:
                sys.path.remove(folder)
        return module
    if not target or not all(part.isidentifier() for part in target.split(".")):
        raise ModelSpecError(f"model {spec!r}: {target!r} is neither a dotted module name nor a .py file")
    added = False
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
        added = True
    try:
        return importlib.import_module(target)
    except (Exception, SystemExit) as err:
        raise ModelSpecError(f"model {spec!r}: importing {target} failed: {_first_line(err)}") from err
    finally:
        if added:
            sys.path.remove(str(Path.cwd()))


def load_model(spec: str, options: dict[str, Any] | None = None, *, group: str = "p4") -> nn.Module:
    """The ``nn.Module`` named by ``spec``, built with ``options`` (see the module docstring)."""
    options = dict(options or {})
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"model must be a name of equiv.models, MODULE:CALLABLE or FILE.py:CALLABLE, got {spec!r}")
    if not is_external(spec):
        from equiv.models import build

        return build(spec, group=group, **options)
    target, _, attr = spec.rpartition(":")
    if not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise ModelSpecError(f"model {spec!r}: after ':' comes a callable's name, e.g. {target or 'net.py'}:make_model")
    obj: Any = _import(target, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelSpecError(f"model {spec!r}: {target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        if options:
            raise ModelSpecError(f"model {spec!r} is already a module instance; it takes no -o options, got {sorted(options)}")
        return obj
    if not callable(obj):
        raise ModelSpecError(f"model {spec!r}: {attr} is {type(obj).__name__!r}, not a callable that builds a model")
    try:
        model = obj(**options)
    except (Exception, SystemExit) as err:
        raise ModelSpecError(f"model {spec!r}: calling {attr}({', '.join(f'{k}={v!r}' for k, v in options.items())}) "
                             f"failed: {_first_line(err)}") from err
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model {spec!r}: {attr}(...) returned {type(model).__name__!r}, not a torch.nn.Module")
    return model
