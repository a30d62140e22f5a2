# rtp: `make demo` runs the main job, `make test` runs the tests. Both set up what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench faults lint typecheck redis-server chromium compiled test-compiled clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v=sys.version_info; sys.exit(0 if (3,10) <= v[:2] <= (3,12) else "rtp needs Python 3.10-3.12 (Bytewax 0.21.1 wheels); set PYTHON=python3.12")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# A redis-server on PATH; else Debian's package when root; else say how.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's redis-server package"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) || exit 1; \
	  else \
	    echo "rtp needs a redis-server on PATH: run 'sudo apt-get install redis-server' (Debian/Ubuntu) or 'brew install redis' (macOS)"; exit 1; \
	  fi; }
	@redis-server --version

# Debian's chromium for the browser tests (tests/browser) when root; else they skip with the reason.
chromium:
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium package (for the browser tests)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the browser tests will skip"; \
	  else \
	    echo "no /usr/bin/chromium: the browser tests will skip ('sudo apt-get install chromium' runs them)"; \
	  fi; }

demo: $(STAMP) redis-server
	$(PY) -m rtp.tools.demo

test: $(STAMP) redis-server chromium
	$(PY) -m pytest tests

bench: $(STAMP) redis-server
	$(PY) -m pytest benchmarks --benchmark-only --benchmark-columns=min,median,mean,max,rounds -p no:randomly -s

# The fault suite (minutes, outside `make test`): poison, a 10x spike, forget during a replay,
# Redis and rtp live killed under load, raw IPs; one table (RELIABILITY.md). --quick: shorter.
faults: $(STAMP) redis-server
	$(PY) benchmarks/faults.py

# The optional compiled build (README "Compiled build"): the hot path compiled with mypyc into a
# wheel, installed beside the sources in build/compiled-site (use it with
# PYTHONPATH=build/compiled-site). Rebuilt whenever a source file changes; never used by
# `make test` or `make demo` unless PYTHONPATH says so.
COMPILED := build/compiled-site/.built
$(COMPILED): $(STAMP) setup.py pyproject.toml $(shell find src -name '*.py' -o -name '*.zdict')
	$(PY) -m pip install -q wheel
	$(VENV)/bin/mypy  # the project's own check first: mypyc reuses its cache (13 min without it)
	rm -rf build
	RTP_MYPYC=1 $(PY) -m pip wheel -q --no-build-isolation --no-deps -w build/compiled-wheel .
	$(PY) -m pip install -q --no-deps --target build/compiled-site build/compiled-wheel/rtp-*.whl
	@touch $(COMPILED)

compiled: $(COMPILED)

# The test suite against the compiled build (the same tests; tests/unit/test_compiled.py also
# checks that the compiled modules are the ones loaded and decide as the sources do).
test-compiled: $(COMPILED) redis-server
	RTP_COMPILED_SITE=$(CURDIR)/build/compiled-site PYTHONPATH=$(CURDIR)/build/compiled-site $(PY) -m pytest tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks flows replay
	$(VENV)/bin/ruff format --check src tests benchmarks flows replay

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .benchmarks build
