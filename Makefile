# face3d: the two commands users need are `make run` and `make test`.
# Both create .venv on first use (about 3 minutes: pip resolves torch + torchvision together).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8050
PYTEST_ARGS ?=

.PHONY: run test test-models test-system venv venv-dev browser redis lint bench clean help vendor-detector

help:
	@echo "make run    - install into $(VENV) and start the dashboard on http://$(HOST):$(PORT)"
	@echo "make test   - install into $(VENV) (with test tools) and run the test suite (about 8 min on 2 cores, <= 4 GB)"
	@echo "make test-models - the full-size network checks, one network per process (about 8 min, <= 6 GB but 2 stated)"
	@echo "make test-system - load, scale-out, restarts, the worst file, every window size (about 3 min)"
	@echo "make lint   - ruff check + ruff format --check (CI runs it before the tests)"
	@echo "make bench  - run the benchmarks in benchmarks/"
	@echo "make vendor-detector YUNET=FILE - ship the YuNet face detector inside the package (for packagers)"

$(VENV)/.runtime-installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.runtime-installed requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime-installed

venv-dev: $(VENV)/.dev-installed

# Headless Chromium + ChromeDriver from Debian for the real-browser tests (tests skip, saying why, if absent).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium + chromium-driver (apt-get) for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "NOTE: chromium/chromium-driver not installed and not root: browser tests will be skipped"; fi

# redis-server from Debian for the scale-out tests (tests/test_scaleout.py skips, saying why, if absent).
# The package index is refreshed only when the plain install fails (`browser` usually just did it).
redis:
	@if command -v redis-server >/dev/null; then :; \
	elif [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
		echo "Installing redis-server (apt-get) for the scale-out tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq redis-server >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }; \
	else echo "NOTE: redis-server not installed and not root: scale-out tests will be skipped"; fi

run: venv
	FACE3D_HOST=$(HOST) FACE3D_PORT=$(PORT) $(PY) -m dashboard --host $(HOST) --port $(PORT)

# Everything but the full-size networks (they are deselected unless asked for: see tests/conftest.py).
test: venv-dev browser redis
	$(PY) -m pytest $(PYTEST_ARGS)

# The full-size networks (ViT-L, BEiT-L, Swin2-B/L references, every network through the app's
# runtime at two input shapes): one pytest process per network, each freed before the next,
# peak memory measured per process (tests/model_tier.py; fails over MODELS_BUDGET_GB).
MODELS_BUDGET_GB ?= 6
test-models: venv-dev
	$(PY) -m tests.model_tier --budget-gb $(MODELS_BUDGET_GB) -- $(PYTEST_ARGS)

# Multi-process system runs (load, scale-out with Redis/Celery/gunicorn, a restart in a container,
# the worst file's memory through a real server, every window size in the browser): minutes of
# wall time that a laptop's `make test` leaves out; CI runs them.
test-system: venv-dev browser redis
	$(PY) -m pytest -m system $(PYTEST_ARGS)

# ruff lint rules and formatting (CI runs `make lint test`: a lint or format problem fails it first).
LINT_PATHS := face3d_core dashboard tests benchmarks
lint: venv-dev
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

# For packagers: copy the YuNet face detector into face3d_core/data (package data; not in git), SHA-256
# checked, so `pip install .` and wheels detect faces offline with no setting. Needs only python3.
YUNET ?=
vendor-detector:
	@test -n "$(YUNET)" || { echo "usage: make vendor-detector YUNET=/path/to/face_detection_yunet_2026may.onnx" >&2; exit 2; }
	$(PYTHON) -m face3d_core.data "$(YUNET)"

bench: venv-dev
	$(PY) benchmarks/depth_speed.py
	$(PY) benchmarks/geometry_speed.py
	$(PY) benchmarks/ui_speed.py
	$(PY) benchmarks/cli_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
