# Entry points: `make demo`, `make test` and `make bench`. All create or reuse .venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint typecheck venv clean node-deps schemas readme grammar

venv: $(STAMP)

# torch is pinned here: the CPU wheel of 2.13.0; a loose range would pull a CUDA build.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[torch,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m adapter_dsl.demo

test: $(STAMP) node-deps
	$(BIN)/python -m pytest -n 2 -q

# Side-by-side benchmarks against the reference library and PEFT (benchmarks/README.md); the
# report goes to benchmarks/out/report.md and report.json. `make bench BENCH_ARGS=--quick` is a
# ~2-minute smoke run. The reference runs in its own environment (adapters 1.3.0 pins
# transformers 4.57), created on first use with the commands of scripts/reference/README.md.
REF := .venv-ref
REF_STAMP := $(REF)/.installed
BENCH_ARGS ?=

$(REF_STAMP):
	@test -x $(REF)/bin/python || python3 -m venv $(REF)
	$(REF)/bin/pip install --quiet torch==2.13.0 'adapters==1.3.0' 'transformers~=4.57.6'
	@touch $(REF_STAMP)

bench: $(STAMP) $(REF_STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# Node packages of the editor-engine test (VS Code's JSON language service), from the
# committed package-lock.json. Without npm the test is skipped, so this only prints a note.
EDITOR_DIR := tests/editor
EDITOR_STAMP := $(EDITOR_DIR)/node_modules/.installed

node-deps:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(EDITOR_STAMP); \
	else \
		echo "note: npm not found; the editor-engine test (tests/editor) will be skipped"; \
	fi

$(EDITOR_STAMP): $(EDITOR_DIR)/package.json $(EDITOR_DIR)/package-lock.json
	@cd $(EDITOR_DIR) && npm ci --no-audit --no-fund --loglevel=error \
		&& touch node_modules/.installed \
		|| echo "note: npm ci failed; the editor-engine test will be skipped"

# Copy the grammar into the package and regenerate its parse tables (tests check both).
grammar: $(STAMP)
	cp grammar/adapter_config.lark adapter_dsl/syntax/adapter_config.lark
	$(BIN)/python -c "from pathlib import Path; from adapter_dsl.syntax.parser import build_tables, tables_text; Path('adapter_dsl/syntax/adapter_config.tables.json').write_text(tables_text(build_tables()))"
	cp grammar/adapter_setup.lark adapter_dsl/syntax/adapter_setup.lark
	$(BIN)/python -c "from pathlib import Path; from adapter_dsl.syntax.setup import build_tables; from adapter_dsl.syntax.parser import tables_text; Path('adapter_dsl/syntax/adapter_setup.tables.json').write_text(tables_text(build_tables()))"

# Regenerate the committed JSON Schema files (a test checks they are current).
schemas: $(STAMP)
	$(BIN)/adapter-dsl schema --output schemas

# Regenerate the identifier table in README.md (a test checks it is current).
readme: $(STAMP)
	$(BIN)/python scripts/gen_readme_tables.py

lint: $(STAMP)
	$(BIN)/ruff check adapter_dsl tests scripts benchmarks
	$(BIN)/ruff format --check adapter_dsl tests scripts benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
