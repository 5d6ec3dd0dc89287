# Two commands on a fresh machine (Python >= 3.11 and make): `make run` and `make test`.
# Each creates .venv on first use and installs a pinned, hash-checked dependency set:
#   requirements.lock            the runtime set (what `make run` and the Docker image install)
#   requirements-dev.lock        runtime + test/lint tools, same pins (what `make test` / `make lint` install)
#   requirements-bootstrap.lock  uv, the installer: ~10x faster than pip here; pip takes over when uv cannot be
#                                installed or fails, with the same locks and the same hash check
# No lock carries a package-index option or a local path: the machine's own settings say where packages come
# from, and --require-hashes refuses any file whose hash is not in the lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
CONFIG ?= config/default.toml
PIP_INSTALL := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: run test lint bench lock check-lock clean

# install_lock(file): uv when present, else (or if uv fails) pip; hash-checked either way. Both write the packages'
# bytecode at install (pip by default, uv with --compile-bytecode): see $(VENV)/.bytecode for why it matters.
install_lock = { [ -x $(UV) ] && $(UV) pip install -q --compile-bytecode --python $(PY) --require-hashes -r $(1); } || \
	$(PIP_INSTALL) --require-hashes -r $(1)

# The runtime set only.
$(VENV)/.runtime: pyproject.toml requirements.lock requirements-bootstrap.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	-$(PIP_INSTALL) --require-hashes -r requirements-bootstrap.lock
	$(call install_lock,requirements.lock)
	{ [ -x $(UV) ] && $(UV) pip install -q --python $(PY) --no-deps -e .; } || $(PIP_INSTALL) --no-deps -e .
	@touch $@

# The development set on top (a superset of the runtime pins, so nothing is reinstalled).
$(VENV)/.installed: $(VENV)/.runtime requirements-dev.lock
	$(call install_lock,requirements-dev.lock)
	@touch $@

run: $(VENV)/.runtime
	$(VENV)/bin/scalper run -c $(CONFIG)

# Bytecode (.pyc) of every installed package, once per install (a venv made before install_lock asked uv for it has
# none). Where the environment sets PYTHONDONTWRITEBYTECODE (our dev and CI machines do) no import writes a .pyc, so
# without it each process compiles what it imports from source, every time: a `scalper run` start compiled ccxt's
# 100+ exchange modules, pydantic and aiohttp (4.0 s CPU instead of 0.9 s), and the suite starts ~60 of them.
# Incremental (a fresh uv install is already compiled: ~0.2 s); ~15 s CPU the first time.
$(VENV)/.bytecode: $(VENV)/.installed
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
	  >/dev/null || echo "note: some installed files did not compile; those are compiled at each import"
	@touch $@

# --durations=25: every log (CI's too) lists the 25 slowest tests. compileall: our own sources' bytecode for the
# processes the tests start (same reason as .bytecode; incremental, ~0.6 s CPU the first time).
test: $(VENV)/.installed $(VENV)/.browser $(VENV)/.bytecode
	$(PY) -m compileall -q bot bench tests
	$(PY) -m pytest -q --durations=25

# The HTML-report and live web view tests render in a real headless Chromium. Best effort: Debian's package where we are
# root with apt; elsewhere that one test skips and says why.
$(VENV)/.browser: | $(VENV)/.installed
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	   chromium >/dev/null) || echo "note: no Chromium; the HTML report and web view browser tests will skip"; }
	@touch $@

# ruff, mypy (pydantic plugin, pyproject [tool.mypy]) and the layering contracts (pyproject
# [tool.importlinter], docs/architecture.md "Layers"). CI runs it before the tests (.ci/run).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check bot bench tests
	$(VENV)/bin/mypy bot bench
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	$(VENV)/bin/scalper bench book ../shared/data/binance_usdm/hftbacktest_usdm_btcusdt_20240808.gz

# Re-pin both sets after changing pyproject.toml (needs the package index). The machine's own pip settings
# (PIP_CONFIG_FILE, PIP_FIND_LINKS) are left out so that no local index or folder ends up in a lock; existing
# pins are kept unless you delete the pin (or pass --upgrade-package NAME via LOCK_ARGS).
LOCK_COMPILE = env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	$(VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links $(LOCK_ARGS)
lock: $(VENV)/.installed
	$(PIP_INSTALL) pip-tools
	$(LOCK_COMPILE) --output-file requirements.lock pyproject.toml
	$(LOCK_COMPILE) --extra test -c requirements.lock --output-file requirements-dev.lock pyproject.toml
	sed -n 's/^\(uv==[^ ]*\).*/\1/p' requirements-bootstrap.lock | $(LOCK_COMPILE) --output-file \
	  requirements-bootstrap.lock -

# Install the runtime lock into a brand-new throw-away venv, hash-checked, with no pip settings from this machine
# (needs the package index; a network check, so a make target and not a test).
check-lock:
	rm -rf $(VENV)-check
	$(PYTHON) -m venv $(VENV)-check
	env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	  $(VENV)-check/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements.lock
	$(VENV)-check/bin/python -c "import aiohttp, ccxt, orjson, pydantic_settings, structlog, websockets, prometheus_client"
	rm -rf $(VENV)-check
	@echo "check-lock: requirements.lock installs with --require-hashes in a clean venv"

clean:
	rm -rf $(VENV) $(VENV)-check .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
