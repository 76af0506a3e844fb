# Two entry points (see README): `make demo` runs the main job, `make test` runs the tests.
# Both create the virtualenv on first use.
VENV    ?= .venv
PYTHON  ?= python3
STAMP   := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# CPU build of torch first (a plain `torch` would pull a multi-GB CUDA build).
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/drpc demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest -q

bench: $(STAMP)
	$(VENV)/bin/python bench/run_all.py --out bench/results.json

clean:
	rm -rf $(VENV) runs
