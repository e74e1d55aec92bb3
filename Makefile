# The two commands of the README: `make test` and `make book`.
# Both create .venv on first use with the pinned versions in requirements/constraints.txt;
# later calls reuse it (the stamp is rebuilt only when pyproject.toml or the pins change).
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.equiv-installed
PIP     := $(PY) -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt
PROFILE ?= $(or $(EQUIV_PROFILE),book)

.PHONY: venv test book clean-book

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: the local CPU wheel, never the multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[book,dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

test: $(STAMP)
	$(PY) -m pytest tests

book: $(STAMP)
	EQUIV_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . --builder html -W --keep-going

clean-book:
	rm -rf _build
