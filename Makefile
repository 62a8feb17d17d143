# any2seq: `make demo` trains and evaluates the default model; `make test` runs the test suite;
# `make bench` compares any2seq with its peers (benchmarks/README.md), `make bench-quick` in minutes,
# `make bench-marian` decodes an imported Marian model with HF generate and with any2seq.
# `make test-hf-compat` runs the Hugging Face tests again on transformers 4.57.x.
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
# The oldest transformers line any2seq[hf] accepts, with the tokenizers and huggingface_hub it needs
# (transformers 4.57 wants tokenizers <=0.23.0 and huggingface_hub <1.0; the venv has 5.x's).
HF_COMPAT     ?= transformers==4.57.6 tokenizers==0.22.2 huggingface_hub==0.36.2
HF_COMPAT_DIR ?= .hf-compat
# the tests of what any2seq does with transformers (import, export, hf encoders); the Marian benchmark's
# and the tutorial's HF blocks run on 5.x only, to keep CI under 20 minutes
HF_TESTS = tests/hf

.PHONY: venv demo test test-hf-compat clean bench bench-quick bench-venv bench-marian

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
	$(BIN)/python -m pytest tests --durations=15

# The HF tests on transformers 4.57.x without a second venv (a second torch and the test extras would
# cost minutes): only those three packages, installed with --target beside the venv and first on
# PYTHONPATH, so that everything else is the venv's. The import check comes first because the tests
# importorskip transformers: a broken overlay would otherwise skip them all and pass.
test-hf-compat: venv
	rm -rf $(HF_COMPAT_DIR)
	$(BIN)/pip install -q --no-deps --no-compile --target $(HF_COMPAT_DIR) $(HF_COMPAT)
	PYTHONPATH=$(abspath $(HF_COMPAT_DIR)) $(BIN)/python -c "import transformers as t; assert t.__version__.startswith('4.57.'), t.__version__"
	PYTHONPATH=$(abspath $(HF_COMPAT_DIR)) $(BIN)/python -m pytest $(HF_TESTS)

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
	rm -rf $(VENV) $(HF_COMPAT_DIR) $(BENCH_VENV) benchmarks/.work runs data/multi30k/.cache
