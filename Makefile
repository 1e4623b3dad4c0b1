# infercc developer targets. `make setup` then `make test` on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (an unpinned torch pulls a multi-GB CUDA build). The +cpu label matches CPU
# wheels only: taken from pip's configured indexes when one is there, else from TORCH_INDEX.
TORCH ?= torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup browser test test-fast lint format demo clean docs

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" 2>/dev/null \
		|| $(BIN)/python -m pip install -q "$(TORCH)" --extra-index-url "$(TORCH_INDEX)"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,rtx,examples,cluster,openvino]"
	$(BIN)/infercc --version
	-@$(MAKE) --no-print-directory browser

# Headless Chromium for the report screenshot test (it skips without one). Best effort: root and apt-get only.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { apt-get install -y -q chromium >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; }; } \
		|| echo "note: headless Chromium not installed here; tests/test_report_html.py will be skipped"

test:
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast:
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

lint:
	$(BIN)/ruff check infercc tests scripts
	$(BIN)/ruff format --check infercc tests scripts

format:
	$(BIN)/ruff format infercc tests scripts
	$(BIN)/ruff check --fix infercc tests scripts

demo:
	$(BIN)/infercc compile configs/efficientnet_lite0.yaml

docs:
	$(BIN)/python scripts/gen_config_doc.py
	$(BIN)/python scripts/gen_report_schema.py

clean:
	rm -rf artifacts .pytest_cache .ruff_cache
