# The two commands of the README, plus helpers. Each target bootstraps its own virtual environment.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra pip arguments for torch, e.g. a CPU-only wheel index on machines that would otherwise pull CUDA.
PIP_TORCH_ARGS ?=
# Test processes: nbval re-executes every notebook, and most run on one core, so two workers halve the wait.
TEST_WORKERS ?= 2

.PHONY: book test bench repro venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel
	$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test]"
	# crypten 0.4.1 declares the retired 'sklearn' package and torchvision: install it alone.
	$(BIN)/python -m pip install -q --no-deps "crypten==0.4.1"
	touch $@

## make book: execute every stale notebook at its defaults (papermill, in place), then build the HTML book.
book: $(STAMP)
	$(BIN)/ppal-lab book

## make test: unit tests, nbval over every committed notebook, and a warning-free book build.
test: $(STAMP)
	$(BIN)/python -m pytest tests notebooks -n $(TEST_WORKERS) --dist loadfile --nbval-lax \
	    --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

## make bench: the side-by-side benchmarks against peer libraries.
bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

## make repro: run every notebook twice at its defaults and compare the records with each other (exactly)
## and with the committed ones (declared tolerances). REPRO_ARGS="--env OPENBLAS_CORETYPE=Haswell" runs the
## second with other BLAS kernels instead (then the two are compared under the tolerances).
repro: $(STAMP)
	$(BIN)/ppal-lab reproduce $(REPRO_ARGS)

clean:
	rm -rf _build runs
