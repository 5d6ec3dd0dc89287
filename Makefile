# Two commands on a fresh machine (Python >= 3.11 and make): `make run` and `make test`.
# Each creates .venv and installs the pinned dependency set (requirements.lock) on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
CONFIG ?= config/default.toml

.PHONY: run test lint bench lock clean

$(VENV)/.installed: pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

run: $(VENV)/.installed
	$(VENV)/bin/scalper run -c $(CONFIG)

test: $(VENV)/.installed $(VENV)/.browser
	$(PY) -m pytest -q

# The HTML-report test renders in a real headless Chromium. Best effort: Debian's package where we are
# root with apt; elsewhere that one test skips and says why.
$(VENV)/.browser: | $(VENV)/.installed
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	   chromium >/dev/null) || echo "note: no Chromium; the HTML report render test will skip"; }
	@touch $@

# ruff, mypy (pydantic plugin, pyproject [tool.mypy]) and the layering contracts (pyproject
# [tool.importlinter], docs/architecture.md "Layers"). CI runs it before the tests (.ci/run).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check bot tests
	$(VENV)/bin/mypy bot
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(VENV)/bin/scalper bench book ../shared/data/binance_usdm/hftbacktest_usdm_btcusdt_20240808.gz

# Re-pin the dependency set after changing pyproject.toml (needs the package index).
lock:
	$(PY) -m pip install -q pip-tools
	$(PY) -m piptools compile -q --strip-extras --extra test --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
