# skinimg: two commands set everything up on a fresh machine.
#   make demo   install into .venv and run the clinic pipeline + analyze on sample_images/ (writes results/)
#   make test   install into .venv (with test extras) and run the tests
#   make docs   regenerate the CLI reference docs/cli.md from --help
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test bench fuzz venv clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/skinimg run clinic sample_images/patients --out results/clinic
	$(BIN)/skinimg analyze sample_images --exclude "truth/*" --exclude "expected/*" --out results/analyze
	@echo "skinimg demo: open results/clinic/report/index.html (study report); tables in results/clinic and results/analyze"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

fuzz: $(STAMP)
	$(BIN)/python benchmarks/fuzz_loader.py --n 20000
	$(BIN)/python benchmarks/fuzz_cli.py --n 2000

docs: $(STAMP)
	$(BIN)/python -c "from skinimg.cli import write_cli_reference; write_cli_reference('docs/cli.md')"

clean:
	rm -rf $(VENV) results bench-results
