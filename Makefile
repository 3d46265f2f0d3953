# `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test quality bench clean old-transformers browser java

setup: $(VENV)/.installed

# torch first, pinned: 2.13.0 is the CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Saved models must also load under transformers 4 (tests/test_versions.py): one environment per version, torch
# first as above, then that transformers and nothing of multigroup.
OLD_TRANSFORMERS ?= 4.51.3 4.57.6
old-transformers: $(foreach version,$(OLD_TRANSFORMERS),.venv-transformers-$(version)/.installed)
.venv-transformers-%/.installed:
	$(PYTHON) -m venv .venv-transformers-$*
	.venv-transformers-$*/bin/python -m pip install -q --upgrade pip
	.venv-transformers-$*/bin/python -m pip install -q torch==2.13.0
	.venv-transformers-$*/bin/python -m pip install -q transformers==$* safetensors
	touch $@

demo: setup
	$(PY) examples/demo.py

# The page test (tests/test_page.py) drives Debian's chromium, headless: installed here where the machine allows it
# (root, or sudo without a password); elsewhere that test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: tests/test_page.py will be skipped"

# Spark (tests/test_engines.py) runs on Java 17+: Debian's headless JRE, installed here where the machine allows it.
java:
	@command -v java >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq default-jre-headless >/dev/null; } \
		|| echo "Java could not be installed: the Spark test will be skipped"

test: setup old-transformers browser java
	$(PY) -m pytest -q

quality: setup
	$(VENV)/bin/ruff check src tests examples scripts
	$(VENV)/bin/ruff format --check src tests examples scripts

# The benchmarks (results in scripts/results/). DATA: the folder holding the SemEval-2016 data folders.
DATA ?= ../shared/data
bench: setup
	$(PY) scripts/bench_speed.py --data-dir $(DATA)/semeval16_absa_rest_en
	$(PY) scripts/bench_quality.py --data-dir $(DATA)/semeval16_absa_rest_en
	$(PY) scripts/bench_quality.py --data-dir $(DATA)/semeval16_absa_laptops_en
	$(PY) scripts/bench_quality.py --data-dir $(DATA)/semeval16_absa_rest_en --batch-size 32 --epochs 2 --arms joint joint_shared_dense joint_normalized
	$(PY) scripts/bench_quality.py --data-dir $(DATA)/semeval16_absa_laptops_en --batch-size 32 --epochs 2 --arms joint joint_shared_dense joint_normalized
	$(PY) scripts/quality_tables.py
	$(PY) scripts/bench_scale.py --data-dir $(DATA)/semeval16_absa_rest_en

clean:
	rm -rf $(VENV) .venv-transformers-* outputs .pytest_cache
