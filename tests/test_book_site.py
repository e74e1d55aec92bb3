"""The website's configuration: repository links from pyproject only (:mod:`equiv.book_site`), the API reference
page, and the static link checker the browser test runs over the built site (``book_browser.check_site_links``).

No book is built here: the link checker is tested on tiny HTML trees written to a temporary folder.
"""

from __future__ import annotations

import copy
import importlib
import re
import sys
from pathlib import Path

import pytest
import yaml

from equiv.book_site import repository_url, site_config, write_site_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from book_browser import check_site_links  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
URL = "https://github.com/someone/equiv"


def _committed() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def _project(tmp_path: Path, urls: str | None = None) -> Path:
    """A folder with a pyproject.toml whose [project.urls] table is ``urls`` (None: no such table)."""
    text = '[project]\nname = "x"\nversion = "0"\n'
    if urls is not None:
        text += f"\n[project.urls]\n{urls}\n"
    (tmp_path / "pyproject.toml").write_text(text)
    return tmp_path


# ------------------------------------------------------------------------------------------------ site_config
def test_without_a_url_the_site_links_to_no_repository(tmp_path) -> None:
    config = _committed()
    before = copy.deepcopy(config)
    out = site_config(config, _project(tmp_path, 'Homepage = "https://example.org/"'))
    assert config == before, "site_config must not modify its argument"
    assert "repository" not in out and "launch_buttons" not in out
    for key in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        assert out["html"][key] is False, key
    theme = out["sphinx"]["config"]["html_theme_options"]
    assert theme["repository_url"] == ""  # Jupyter Book's default (its own repository) is overridden
    assert theme["use_download_button"] is True  # the rest of the theme options is kept
    assert out["html"]["home_page_in_navbar"] == config["html"]["home_page_in_navbar"]
    assert out["execute"] == config["execute"]


def test_without_a_urls_table_either(tmp_path) -> None:
    assert repository_url(_project(tmp_path)) is None
    assert "repository" not in site_config(_committed(), tmp_path)


def test_utterances_comments_are_switched_off_without_a_url(tmp_path) -> None:
    config = {"html": {"comments": {"utterances": {"repo": "someone/equiv"}, "hypothesis": True}}}
    out = site_config(config, _project(tmp_path))
    assert out["html"]["comments"] == {"utterances": False, "hypothesis": True}


def test_without_recursive_update_no_theme_block_is_added(tmp_path) -> None:
    # a sphinx.config.html_theme_options block would replace all of Jupyter Book's theme options
    out = site_config({"sphinx": {"config": {"nb_merge_streams": True}}}, _project(tmp_path))
    assert out["sphinx"] == {"config": {"nb_merge_streams": True}}
    assert out["html"]["use_repository_button"] is False


def test_with_a_url_the_repository_is_set_and_the_buttons_stay(tmp_path) -> None:
    config = _committed()
    out = site_config(config, _project(tmp_path, f'Repository = "{URL}"'))
    assert out["repository"] == {**config["repository"], "url": URL}
    assert out["launch_buttons"] == config["launch_buttons"]
    assert out["html"] == config["html"]
    assert out["html"]["use_repository_button"] is True and out["html"]["use_issues_button"] is True
    assert out["sphinx"] == config["sphinx"]


def test_outside_github_the_github_only_launchers_are_dropped(tmp_path) -> None:
    config = _committed()
    out = site_config(config, _project(tmp_path, 'Repository = "https://gitlab.com/someone/equiv"'))
    assert out["repository"]["url"] == "https://gitlab.com/someone/equiv"
    assert "colab_url" in config["launch_buttons"] and "colab_url" not in out["launch_buttons"]
    assert out["launch_buttons"]["binderhub_url"] == config["launch_buttons"]["binderhub_url"]


@pytest.mark.parametrize("value", ['"http://github.com/someone/equiv"', '"https://github.com/someone"',
                                   '"https://github.com/someone/equiv.git"', '"https://github.com/someone/equiv/"',
                                   '"github.com/someone/equiv"', '""', "42"])
def test_a_malformed_url_is_refused_in_one_line(tmp_path, value) -> None:
    root = _project(tmp_path, f"Repository = {value}")
    with pytest.raises(ValueError, match=r"\[project\.urls\] Repository .* must be https://HOST/OWNER/NAME") as err:
        site_config(_committed(), root)
    assert "\n" not in str(err.value)


def test_an_unknown_host_is_refused(tmp_path) -> None:
    root = _project(tmp_path, 'Repository = "https://example.org/someone/equiv"')
    with pytest.raises(ValueError, match=r"'example\.org'.*github\.com, gitlab\.com, bitbucket\.org"):
        repository_url(root)


def test_a_url_in_the_book_config_is_refused(tmp_path) -> None:
    root = _project(tmp_path, f'Repository = "{URL}"')
    with pytest.raises(ValueError, match=r"names the repository URL 'https://github\.com/x/y'.*pyproject\.toml"):
        site_config({"repository": {"url": "https://github.com/x/y"}}, root)
    theme = {"sphinx": {"config": {"html_theme_options": {"repository_url": "https://github.com/x/y"}}}}
    with pytest.raises(ValueError, match="names the repository URL"):
        site_config(theme, root)


def test_no_pyproject_is_an_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no pyproject.toml in"):
        site_config({}, tmp_path)


def test_invalid_toml_is_an_error(tmp_path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ValueError, match="is not valid TOML"):
        repository_url(tmp_path)


# ------------------------------------------------------------------------------------------ write_site_config
@pytest.mark.parametrize("execute", [False, True])
def test_write_site_config_round_trip(tmp_path, execute) -> None:
    root = _project(tmp_path, f'Repository = "{URL}"')
    target = tmp_path / "build" / "config" / "_config.yml"
    assert write_site_config(CONFIG, target, root, execute=execute) == target
    written = yaml.safe_load(target.read_text())
    expected = site_config(_committed(), root)
    if not execute:
        assert written["execute"]["execute_notebooks"] == "off"  # the string, not YAML 1.1's boolean off
        expected["execute"]["execute_notebooks"] = "off"
    assert written == expected  # the rest of the execute block, and everything else, as site_config made it
    assert [p.name for p in target.parent.iterdir()] == ["_config.yml"], "a temporary file was left behind"


def test_write_site_config_replaces_the_target(tmp_path) -> None:
    root = _project(tmp_path)
    target = tmp_path / "_config.out.yml"
    target.write_text("old: true\n")
    write_site_config(CONFIG, target, root, execute=False)
    written = yaml.safe_load(target.read_text())
    assert "old" not in written and "repository" not in written
    assert written["execute"] == {**_committed()["execute"], "execute_notebooks": "off"}


def test_write_site_config_refuses_a_missing_or_non_mapping_source(tmp_path) -> None:
    root = _project(tmp_path)
    with pytest.raises(ValueError, match="no book configuration at"):
        write_site_config(tmp_path / "missing.yml", tmp_path / "out.yml", root, execute=False)
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a YAML mapping, got list"):
        write_site_config(tmp_path / "list.yml", tmp_path / "out.yml", root, execute=False)
    assert not (tmp_path / "out.yml").exists()


# ------------------------------------------------------------------------------------------ committed files
def test_the_committed_book_config_names_no_repository_url() -> None:
    config = _committed()
    assert "url" not in (config.get("repository") or {})
    assert "repository_url" not in config["sphinx"]["config"].get("html_theme_options", {})
    text = CONFIG.read_text()
    assert "equiv-companion" not in text
    hosts = re.findall(r"https?://(?:www\.)?(github\.com|gitlab\.com|bitbucket\.org)/\S*", text)
    assert not hosts, f"_config.yml names a repository: {hosts}"
    # and it goes through site_config with the repository's own pyproject.toml, whatever that says
    site_config(config, ROOT)


# the public modules the API reference must cover (each documented by an automodule directive)
API_MODULES = [
    "equiv.groups", "equiv.sampling_grid", "equiv.exactness", "equiv.exactness_fixes", "equiv.testing",
    "equiv.nn", "equiv.nn.gconv", "equiv.nn.pooling", "equiv.nn.batchnorm", "equiv.nn.dropout", "equiv.nn.layout",
    "equiv.models", "equiv.metrics", "equiv.evaluation", "equiv.rotation", "equiv.train",
    "equiv.data", "equiv.data.mnist", "equiv.data.regimes", "equiv.data.splits",
    "equiv.experiments", "equiv.experiments.rotmnist_study", "equiv.study", "equiv.claims", "equiv.reference",
    "equiv.batch", "equiv.batch.grid", "equiv.batch.runner", "equiv.batch.script", "equiv.batch.committed", "equiv.batch.metrics",
    "equiv.model_spec", "equiv.provenance",
]


def test_the_api_page_covers_the_public_modules_and_is_the_last_chapter() -> None:
    page = (ROOT / "book" / "api.md").read_text()
    documented = re.findall(r"^\.\. automodule:: (\S+)$", page, flags=re.M)
    assert sorted(set(documented)) == sorted(documented), "a module documented twice"
    missing = [m for m in API_MODULES if m not in documented]
    assert not missing, f"book/api.md does not document {missing}"
    for module in documented:
        importlib.import_module(module)  # autodoc imports every one of them at build time
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["chapters"][-1] == {"file": "book/api"}
    config = _committed()
    assert {"sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon"} <= set(
        config["sphinx"]["extra_extensions"])


# --------------------------------------------------------------------------------------------- link checker
def _site(tmp_path: Path, pages: dict[str, str]) -> Path:
    root = tmp_path / "html"
    for name, body in pages.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body if not name.endswith(".html") else f"<html><body>{body}</body></html>")
    return root


GOOD = {
    "index.html": ('<h1 id="top">t</h1><a href="#top">top</a> <a href="#">nothing</a> <a href="other.html">o</a> '
                   '<a href="other.html#sec">s</a> <a href="./other.html?highlight=x#sec">q</a> <a href="sub/">d</a> '
                   '<a href="sub/page.html#deep%20id">p</a> <a href="/other.html">root-relative</a> '
                   '<link rel="stylesheet" href="_static/style.css?v=1"> <script src="_static/app.js"></script> '
                   '<img src="_images/fig.png"> <img src="data:image/png;base64,AAAA"> '
                   '<a href="https://example.org/x">ext</a> <a href="mailto:a@example.org">m</a> '
                   '<a href="javascript:void(0)">js</a> <a href="//cdn.example.org/x.js">cdn</a>'),
    "other.html": '<section id="sec"><a name="old">old</a></section><a href="index.html#top">back</a>',
    "sub/index.html": '<a href="../index.html">up</a> <a href="page.html">p</a>',
    "sub/page.html": '<p id="deep id">d</p><a href="../other.html#old">o</a>',
    "_static/style.css": "body {}",
    "_static/app.js": "",
    "_images/fig.png": "png",
    # a theme's Jinja template among the assets: not a page, its links are not checked
    "_static/macros.html": "<a href=\"{{ pathto('x') }}\">t</a>",
}


def test_a_site_whose_links_all_resolve_passes(tmp_path) -> None:
    assert check_site_links(_site(tmp_path, GOOD), forbidden=("equiv-companion",)) == []


@pytest.mark.parametrize("page, link, problem", [
    ("index.html", '<a href="missing.html">x</a>', "missing.html -> no file missing.html"),
    ("index.html", '<a href="other.html#nowhere">x</a>', "-> no element with id 'nowhere' in other.html"),
    ("index.html", '<a href="#nowhere">x</a>', "-> no element with id 'nowhere' in index.html"),
    ("sub/page.html", '<a href="../gone/page.html">x</a>', "-> no file gone/page.html"),
    ("sub/page.html", '<img src="../_images/missing.png">', "-> no file _images/missing.png"),
    ("index.html", '<script src="_static/missing.js"></script>', "-> no file _static/missing.js"),
    ("index.html", '<link rel="stylesheet" href="_static/missing.css?v=2">', "-> no file _static/missing.css"),
    ("index.html", '<a href="empty/">x</a>', "-> no file empty/index.html"),
    ("index.html", '<a href="../outside.html">x</a>', "-> outside the site"),
    ("index.html", '<a href="https://github.com/equiv-companion/equiv">r</a>', "-> a made-up external link"),
    ("index.html", '<a href="https://mybinder.org/v2/gh/Equiv-Companion/equiv/main?urlpath=lab">b</a>',
     "-> a made-up external link"),
])
def test_each_broken_link_is_reported(tmp_path, page, link, problem) -> None:
    pages = dict(GOOD)
    pages[page] = pages[page] + " " + link
    root = _site(tmp_path, pages)
    (root / "empty").mkdir(exist_ok=True)
    problems = check_site_links(root, forbidden=("equiv-companion",))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{page}: ") and problem in problems[0], problems


def test_external_links_are_only_checked_against_the_forbidden_list(tmp_path) -> None:
    pages = {"index.html": '<a href="https://github.com/equiv-companion/equiv">r</a>'}
    assert check_site_links(_site(tmp_path, pages)) == []


def test_a_folder_without_pages_is_an_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no HTML page under"):
        check_site_links(_site(tmp_path, {"_static/macros.html": "<a href='x'>x</a>"}))
    with pytest.raises(ValueError, match="no built site at"):
        check_site_links(tmp_path / "missing")
