# any2seq: `make demo` trains and evaluates the default model; `make test` runs the test suite.
PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
TORCH   ?= torch==2.13.0
DEMO    ?= runs/demo
TEST_SRC = data/multi30k/test_2016_flickr.de.gz
TEST_REF = data/multi30k/test_2016_flickr.en.gz

.PHONY: venv demo test clean

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

clean:
	rm -rf $(VENV) runs data/multi30k/.cache
