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

# The suite on every core (pytest-xdist): one worker per core (at most 8: each holds torch, ~0.6 GB), each test
# file on one worker, one torch thread per worker (tests/conftest.py). `.venv/bin/python -m pytest tests` still
# runs it in one process.
test: $(STAMP)
	$(PY) -m pytest tests -n auto --maxprocesses 8 --dist loadfile

# The book: `make book` (profile book), `EQUIV_PROFILE=smoke make book` or `make book PROFILE=smoke`, in two
# stages (equiv/book_build.py): (1) the batch runner executes every chapter of _toc.yml with papermill at the
# profile, into _build/executed/PROFILE/ (a progress bar; a chapter whose notebook, profile, library and data are
# unchanged is not executed again, so a killed build resumes; no wall-clock limit on a cell; the claims ledger
# runs last); (2) Jupyter Book renders the executed notebooks into _build/html without executing anything,
# warnings as errors. `make book PROFILE=paper` renders a paper-scale book from chapters executed elsewhere.
# BOOK_JOBS chapters run at once, BOOK_THREADS CPU threads each. Both empty (the default at the book and paper
# profiles): the packing `equiv run` measures for this machine (cached; the line is printed), and the longest
# chapters start first. The smoke profile's tensors are tiny: there extra threads only cost time, so it runs two
# 1-thread chapters at a time.
BOOK_JOBS    ?= $(if $(filter smoke,$(PROFILE)),2,)
BOOK_THREADS ?= $(if $(filter smoke,$(PROFILE)),1,)

book: $(STAMP)
	$(VENV)/bin/equiv book --profile $(PROFILE)$(if $(BOOK_JOBS), --jobs $(BOOK_JOBS))$(if $(BOOK_THREADS), --threads $(BOOK_THREADS))
	@echo "book built at profile $(PROFILE): _build/html/index.html"

clean-book:
	rm -rf _build
