# any2seq: `make demo` trains and evaluates the default model; `make test` runs the test suite;
# `make bench` compares any2seq with its peers (benchmarks/README.md), `make bench-quick` in minutes,
# `make bench-marian` decodes an imported Marian model with HF generate and with any2seq.
PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
TORCH   ?= torch==2.13.0
DEMO    ?= runs/demo
TEST_SRC = data/multi30k/test_2016_flickr.de.gz
TEST_REF = data/multi30k/test_2016_flickr.en.gz
BENCH_VENV ?= .bench-venv
BENCH_ARGS ?=
MARIAN_ARGS ?=

.PHONY: venv demo test clean bench bench-quick bench-venv bench-marian

venv: $(BIN)/any2seq

$(BIN)/any2seq: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

demo: venv
	rm -rf $(DEMO)
	$(BIN)/any2seq train configs/demo.yaml --out $(DEMO)
	@echo "--- a few test sentences, beam 5:"
	zcat $(TEST_SRC) | head -5 | tee /dev/stderr | $(BIN)/any2seq translate --model $(DEMO) --beam 5
	@echo "--- test_2016_flickr, beam 5:"
	$(BIN)/any2seq evaluate --model $(DEMO) --src $(TEST_SRC) --ref $(TEST_REF) --beam 5 --hyps $(DEMO)/test.hyp

test: venv
	$(BIN)/python -m pytest tests

# The peer venv: torch==2.13.0 first, then pinned peers constrained to it (benchmarks/setup_venv.sh).
bench-venv: $(BENCH_VENV)/peers.json

$(BENCH_VENV)/peers.json: benchmarks/setup_venv.sh benchmarks/requirements-peers.txt
	PY=$(PY) TORCH="$(TORCH)" benchmarks/setup_venv.sh $(BENCH_VENV)

bench: venv bench-venv
	$(BIN)/python benchmarks/run.py --peer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

bench-quick: venv bench-venv
	$(BIN)/python benchmarks/run.py --quick --peer-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

# Decoding speed on imported weights: an opus-mt-shaped MarianMTModel, HF generate against any2seq
# after `any2seq import-hf`, same sentences and batches (benchmarks/marian_import.py).
bench-marian: venv
	$(BIN)/python benchmarks/marian_import.py $(MARIAN_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) benchmarks/.work runs data/multi30k/.cache
