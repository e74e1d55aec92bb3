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

# The book: `make book` (profile book), `EQUIV_PROFILE=smoke make book` or `make book PROFILE=smoke`.
# jupyter-cache keys a notebook on its code cells only. What a notebook computes also depends on the profile
# (read from $EQUIV_PROFILE), on the library and on data/ (reference runs, collected results), none of which
# that key sees. So every profile gets its own execution cache, in a folder named after a hash of equiv/*.py and
# data/: _config.yml is copied to _build/config/ with execute.cache set to _build/.jupyter_cache/PROFILE/HASH.
# An unchanged rebuild executes nothing; a change to the library or the data re-executes every notebook (and the
# result cache, keyed on the same source, retrains what changed). Older hash folders of the profile are removed.
BOOK_CONFIG := _build/config/_config.$(PROFILE).yml
BOOK_FLAGS  ?= -W --keep-going
# Torch threads for the notebooks (OMP_NUM_THREADS; empty: torch's default, one per core). The smoke profile's
# tensors are tiny: there extra threads only cost time, up to 60x when other processes share the cores.
BOOK_THREADS ?= $(if $(filter smoke,$(PROFILE)),1,)

define BOOK_CONFIG_PY
import hashlib, shutil, sys, yaml
from pathlib import Path
profile, target = sys.argv[1:]
if profile not in ("smoke", "book", "paper"):
    sys.exit(f"make book: unknown profile {profile!r}; use smoke, book or paper")
h = hashlib.sha256()
for path in sorted([*Path("equiv").rglob("*.py"), *(p for p in Path("data").rglob("*") if p.is_file())]):
    h.update(path.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
inputs = h.hexdigest()[:16]
cache = Path("_build/.jupyter_cache") / profile
if cache.is_dir():
    for old in cache.iterdir():
        if old.name != inputs:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
with open("_config.yml") as f:
    config = yaml.safe_load(f)
config.setdefault("execute", {})["cache"] = str(cache / inputs)
with open(target, "w") as f:
    yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
endef
export BOOK_CONFIG_PY

book: $(STAMP)
	@mkdir -p _build/config
	@$(PY) -c "$$BOOK_CONFIG_PY" $(PROFILE) $(BOOK_CONFIG)
	$(if $(BOOK_THREADS),OMP_NUM_THREADS=$(BOOK_THREADS) )EQUIV_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build . \
		--config $(BOOK_CONFIG) --builder html $(BOOK_FLAGS)
	@echo $(PROFILE) > _build/.book-profile
	@echo "book built at profile $(PROFILE): _build/html/index.html"

clean-book:
	rm -rf _build
