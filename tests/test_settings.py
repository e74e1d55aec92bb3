"""equiv.settings: the one home of profiles and environment-variable names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from equiv import settings
from equiv.experiments import params

PACKAGE = Path(settings.__file__).parent


def test_resolve_profile_prefers_the_argument_then_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(settings.PROFILE_ENV, raising=False)
    assert settings.resolve_profile() == settings.DEFAULT_PROFILE == "book"
    monkeypatch.setenv(settings.PROFILE_ENV, "smoke")
    assert settings.resolve_profile() == "smoke" and settings.resolve_profile("paper") == "paper"
    monkeypatch.setenv(settings.PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match=r"^unknown profile 'huge'; allowed: smoke, book, paper$"):
        settings.resolve_profile()


def test_per_profile_is_what_a_param_takes() -> None:
    p = params.Param("n", "int", settings.per_profile(1, 2, 3))
    assert [p.default_for(x) for x in settings.PROFILES] == [1, 2, 3]
    assert params.resolve_profile is settings.resolve_profile and params.PROFILES is settings.PROFILES


def test_every_environment_variable_is_named_in_settings_only() -> None:
    """A string literal "EQUIV_..." anywhere else in the library would be a second spelling of a name."""
    literal = re.compile(r"""["']EQUIV_[A-Z_]+["']""")
    found = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py") if p.name != "settings.py"
             for i, line in enumerate(p.read_text().splitlines(), 1) if literal.search(line)]
    assert not found, f"environment-variable names spelled outside equiv/settings.py: {found}"
    names = {v for k, v in vars(settings).items() if k.endswith("_ENV")}
    for name in names:  # each is documented in the module's table
        assert f"``{name}``" in settings.__doc__, name


def test_per_profile_defaults_have_one_spelling() -> None:
    found = [f"{p.relative_to(PACKAGE)}:{i}" for p in PACKAGE.rglob("*.py") if p.name != "settings.py"
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if "dict(zip(PROFILES" in line or re.search(r"def _(by_profile|p)\(smoke", line)]
    assert not found, f"per-profile defaults written without equiv.settings.per_profile: {found}"
