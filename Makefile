# The README's two commands: `make demo` (set up + the main job) and `make test` (set up + tests).
VENV ?= .venv

.PHONY: setup demo test test-fast lint vllm-env clean
setup: $(VENV)/.thor-setup

$(VENV)/.thor-setup: pyproject.toml scripts/setup.sh
	scripts/setup.sh

demo: setup
	$(VENV)/bin/thor demo

test: setup
	scripts/test.sh

test-fast: setup
	scripts/test.sh fast

vllm-env:
	scripts/setup_vllm.sh

lint: setup
	$(VENV)/bin/ruff check thor tests benchmarks examples
	$(VENV)/bin/mypy thor

clean:
	rm -rf $(VENV) .venv-vllm build *.egg-info .pytest_cache
