# Two entry points, each installs what it needs into .venv first:
#   make demo   - the main job on the embedded offline corpus (render -> train -> evaluate -> figures -> tag)
#   make test   - the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast bench install clean default-model docs

$(BIN)/instrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(BIN)/instrec

# DEMO_ARGS: e.g. "--clips 500 --epochs 20 --no-real" for a smaller tour (instrec demo --help).
DEMO_ARGS ?=

demo: install
	$(BIN)/instrec demo --out demo-output $(DEMO_ARGS)

# The tests run in TEST_JOBS processes (pytest-xdist, in the test extra; one process without it).
TEST_JOBS ?= 2
XDIST = $$($(BIN)/python -c 'import xdist' 2>/dev/null && echo "-n $(TEST_JOBS)")

test: install
	$(BIN)/python -m pytest $(XDIST)

# The same without the tests marked slow (torch.compile, the end-to-end demo): a quicker loop while editing.
test-fast: install
	$(BIN)/python -m pytest $(XDIST) -m "not slow"

# Rebuild the default model inside src/instrec/tagging/default (bit for bit on the same machine and fonts):
# needs the General MIDI fonts of Debian's fluid-soundfont-gm, musescore-general-soundfont-lossless,
# timgm6mb-soundfont and csound-soundfont, and pedalboard (pip install -e '.[augment]').
default-model: install
	$(BIN)/python -m pip install -q -e '.[augment]'
	$(BIN)/instrec default-model --work default-model-work

bench: install
	$(BIN)/python benchmarks/run_all.py

# The documentation website into site/ (every link checked).
docs: install
	$(BIN)/python -m pip install -q -e '.[docs]'
	$(BIN)/python -m mkdocs build --strict

clean:
	rm -rf $(VENV) demo-output default-model-work .pytest_cache site
