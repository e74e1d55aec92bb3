"""The website's repository links, from one place: ``[project.urls] Repository`` in ``pyproject.toml``.

``_config.yml`` names no repository URL. It declares which repository-derived features the site wants (the
repository and issues buttons, the Binder / Colab launch buttons, the branch and the book's path in the
repository); :func:`site_config` switches them on or off from pyproject:

- ``Repository`` set (e.g. ``Repository = "https://github.com/OWNER/NAME"``): ``repository.url`` is that URL
  and the declared buttons stay as they are. The URL must be ``https://HOST/OWNER/NAME`` on a host the book
  theme knows (github.com, gitlab.com, bitbucket.org); the Colab and Deepnote buttons, which work only with
  GitHub, are dropped for the other hosts.
- ``Repository`` not set (the default): the ``repository`` and ``launch_buttons`` sections are removed, the
  repository / issues / edit-this-page buttons and utterances comments (a GitHub-issue widget) are off, and
  with ``sphinx.recursive_update: true`` (as in ``_config.yml``) the theme's ``repository_url`` is emptied, so
  that Jupyter Book's own default repository (``executablebooks/jupyter-book``) cannot leak into a link
  either. (Without ``recursive_update`` a theme-options block would replace all of Jupyter Book's theme
  options, so none is added; the buttons are off either way.) The site then links to no repository.

:func:`write_site_config` is the one call of the book build: it reads ``_config.yml``, applies
:func:`site_config`, optionally switches notebook execution off, and writes the configuration that
``jupyter-book build --config`` is given (atomically, :mod:`equiv.atomic_io`).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from equiv.atomic_io import atomic_write_text

__all__ = ["URL_KEY", "KNOWN_HOSTS", "repository_url", "site_config", "write_site_config"]

#: the key of pyproject's ``[project.urls]`` table that names the repository
URL_KEY = "Repository"

#: hosts whose repositories the book theme can link to (it infers the provider from the host name)
KNOWN_HOSTS = ("github.com", "gitlab.com", "bitbucket.org")

# launch providers that only work with a GitHub repository (sphinx-book-theme warns otherwise, failing -W)
_GITHUB_ONLY_LAUNCHERS = ("colab_url", "deepnote_url")
_HTML_BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")
_URL = re.compile(r"https://(?P<host>[A-Za-z0-9.-]+)/(?P<owner>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+)")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError(f"cannot read {path} on Python 3.10 without tomli: pip install tomli") from None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from None


def repository_url(root: str | Path) -> str | None:
    """The repository URL of ``root/pyproject.toml`` (``[project.urls] Repository``), or None where unset.

    Raises:
        ValueError: no ``pyproject.toml`` in ``root``, or a ``Repository`` that is not
            ``https://HOST/OWNER/NAME`` on one of :data:`KNOWN_HOSTS` (without ``.git`` or a trailing slash).
    """
    path = Path(root) / "pyproject.toml"
    if not path.is_file():
        raise ValueError(f"no pyproject.toml in {Path(root)}: the repository URL is read from its [project.urls]")
    urls = _load_toml(path).get("project", {}).get("urls", {})
    if URL_KEY not in urls:
        return None
    url = urls[URL_KEY]
    match = _URL.fullmatch(url) if isinstance(url, str) else None
    if match is None or url.endswith(".git"):
        raise ValueError(f"[project.urls] {URL_KEY} in {path} must be https://HOST/OWNER/NAME (no .git, no "
                         f"trailing slash), got {url!r}")
    if match["host"].lower() not in KNOWN_HOSTS:
        raise ValueError(f"[project.urls] {URL_KEY} in {path} is on {match['host']!r}: the book theme links "
                         f"only to repositories on {', '.join(KNOWN_HOSTS)}")
    return url


def site_config(config: dict[str, Any], root: str | Path) -> dict[str, Any]:
    """A copy of the parsed ``_config.yml`` ``config`` with its repository links decided by ``root``'s pyproject.

    See the module docstring for what changes with and without ``[project.urls] Repository``. ``config`` is
    not modified.

    Raises:
        ValueError: ``config`` names a repository URL itself (``repository.url``, or ``repository_url`` in
            ``sphinx.config.html_theme_options``): the URL belongs in pyproject only; or pyproject's URL is
            invalid (:func:`repository_url`).
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be the dict of a parsed _config.yml, got {type(config).__name__}")
    out = copy.deepcopy(config)
    theme = ((out.get("sphinx") or {}).get("config") or {}).get("html_theme_options")
    named = [value for value in ((out.get("repository") or {}).get("url"), (theme or {}).get("repository_url"))
             if value]
    if named:
        raise ValueError(f"_config.yml names the repository URL {named[0]!r}: remove it, the URL is read from "
                         f"[project.urls] {URL_KEY} in pyproject.toml (equiv.book_site)")
    url = repository_url(root)
    if url is not None:
        out["repository"] = {**(out.get("repository") or {}), "url": url}
        if _URL.fullmatch(url)["host"].lower() != "github.com":
            for key in _GITHUB_ONLY_LAUNCHERS:
                (out.get("launch_buttons") or {}).pop(key, None)
        return out
    out.pop("repository", None)
    out.pop("launch_buttons", None)
    html = out["html"] = dict(out.get("html") or {})
    for key in _HTML_BUTTONS:
        html[key] = False
    if (html.get("comments") or {}).get("utterances"):
        html["comments"] = {**html["comments"], "utterances": False}
    sphinx = out.get("sphinx") or {}
    if sphinx.get("recursive_update") is True:
        # merged into Jupyter Book's theme options: empties the default repository_url (Jupyter Book's own)
        sphinx_config = sphinx["config"] = dict(sphinx.get("config") or {})
        theme = sphinx_config["html_theme_options"] = dict(sphinx_config.get("html_theme_options") or {})
        theme.pop("launch_buttons", None)
        theme["repository_url"] = ""
        for key in _HTML_BUTTONS:
            theme[key] = False
        out["sphinx"] = sphinx
    return out


def write_site_config(source: str | Path, target: str | Path, root: str | Path, *, execute: bool) -> Path:
    """Read the ``_config.yml`` at ``source``, apply :func:`site_config` for ``root``, write ``target``.

    With ``execute=False`` the notebooks are not run (``execute.execute_notebooks: "off"``); the rest of the
    ``execute:`` block is kept as it is. ``target`` is written atomically; returns its path.

    Raises:
        ValueError: ``source`` is missing or not a YAML mapping, or :func:`site_config` refuses it.
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise ValueError(f"no book configuration at {source}")
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{source} must hold a YAML mapping, got {type(config).__name__}")
    out = site_config(config, root)
    if not execute:
        execute_block = out.get("execute")
        out["execute"] = {**(execute_block if isinstance(execute_block, dict) else {}), "execute_notebooks": "off"}
    return atomic_write_text(target, yaml.safe_dump(out, sort_keys=False, allow_unicode=True))
