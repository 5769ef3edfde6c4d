# The two commands of the README, plus helpers. Each target bootstraps its own virtual environment.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Extra pip arguments for torch, e.g. a CPU-only wheel index on machines that would otherwise pull CUDA.
PIP_TORCH_ARGS ?=
# Test processes: nbval re-executes every notebook, and most run on one core, so two workers halve the wait.
TEST_WORKERS ?= 2
# Flower and Ray never report usage: nothing here contacts the network.
export FLWR_TELEMETRY_ENABLED = 0
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: book test bench repro venv clean browser student

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

# The book's browser tests drive Debian's chromium (Playwright's own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	    apt-get install -y -q --no-install-recommends chromium; } || \
	    echo "chromium missing and not root: the browser tests will skip (and fail under CI=1)"

## make test: unit tests, nbval over every committed notebook, a warning-free book build and its browser tests.
test: $(STAMP) browser
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

## make student: every chapter without its solutions, for a course (into _build/student).
student: $(STAMP)
	$(BIN)/python book/_ext/student_notebooks.py _build/student

clean:
	rm -rf _build runs
