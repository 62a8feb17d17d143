"""The Python API: ``any2seq.load(DIR).translate(lines)``, and what a model directory round-trips."""
import pytest
import torch

import any2seq
from any2seq.config import DecodeConfig
from any2seq.data import collate
from any2seq.errors import UserError
from any2seq.inference import SearchOptions
from any2seq.interfaces import shift_right
from any2seq.modeldir import load_model, read_card
from any2seq.tasks.translation import Tokenizers, translate_lines

from .conftest import STEPS

runs = pytest.mark.parametrize("run", ["trained", "trained_rnn"], ids=["transformer", "gru-bahdanau"])


def test_translate_returns_a_string_per_line_or_n_best_lists(trained):
    translator = any2seq.load(trained.dir)
    out = translator.translate(["Ein Hund läuft."], beam=5)
    assert isinstance(out, list) and len(out) == 1 and isinstance(out[0], str) and out[0]

    n_best = translator.translate(["Ein Hund läuft.", "Zwei Hunde spielen im Gras."], beam=5, n_best=3)
    assert len(n_best) == 2
    for item in n_best:
        assert isinstance(item, list) and len(item) == 3 and all(isinstance(s, str) for s in item)
        assert len(set(item)) == 3
    assert n_best[0][0] == out[0]


def test_translate_keeps_order_and_empty_lines(trained):
    translator = any2seq.load(trained.dir)
    lines = [de for de, _ in trained.pairs[:4]]
    alone = [translator.translate([line], beam=3)[0] for line in lines]
    mixed = translator.translate([lines[2], "", lines[0], lines[3], "", lines[1]], beam=3)
    assert mixed == [alone[2], "", alone[0], alone[3], "", alone[1]]


def test_translate_refuses_a_bare_string(trained):
    with pytest.raises(TypeError, match="list of strings"):
        any2seq.load(trained.dir).translate("Ein Hund läuft.")


@runs
def test_a_loaded_model_translates_as_the_trained_one_did(run, request):
    run = request.getfixturevalue(run)
    assert read_card(run.dir)["step"] == STEPS  # the saved best weights are the final ones
    translator = any2seq.load(run.dir)
    toks = Tokenizers.load(run.dir, joint=True)
    lines = [de for de, _ in run.pairs] + ["Ein Hund läuft.", "Eine Frau singt in einer Kirche."]
    for beam in (1, 5):
        in_memory = translate_lines(run.model, toks, lines, SearchOptions(beam=beam), DecodeConfig())
        assert translator.translate(lines, beam=beam) == [n_best[0] for n_best in in_memory]


@runs
@torch.no_grad()
def test_saved_and_reloaded_weights_give_bit_identical_logits(run, request):
    run = request.getfixturevalue(run)
    loaded = load_model(run.dir, "cpu")[0]  # the weights as saved (any2seq.load also prepacks them)
    toks = Tokenizers.load(run.dir, joint=True)
    src = toks.src.encode([de for de, _ in run.pairs[:8]])
    tgt = toks.tgt.encode([en for _, en in run.pairs[:8]])
    batch = collate(src, tgt, range(8))
    dec_in = shift_right(batch.tgt, run.model.bos)
    run.model.eval()
    expected, _ = run.model(batch.src, dec_in, batch.src_lengths)
    got, _ = loaded(batch.src, dec_in, batch.src_lengths)
    assert torch.equal(got, expected)
    packed, _ = any2seq.load(run.dir).model(batch.src, dec_in, batch.src_lengths)
    torch.testing.assert_close(packed, expected, atol=1e-4, rtol=1e-4)


@runs
def test_bf16_decoding_mostly_agrees_with_float32(run, request):
    run = request.getfixturevalue(run)
    lines = [de for de, _ in run.pairs]
    want = any2seq.load(run.dir).translate(lines, beam=5)
    bf16 = any2seq.load(run.dir, dtype="bf16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    got = bf16.translate(lines, beam=5)
    assert sum(a == b for a, b in zip(got, want)) >= 0.8 * len(lines)  # bf16 logits may reorder near-ties


def test_load_refuses_an_unknown_dtype(trained):
    with pytest.raises(UserError, match="dtype: 'float16' is not one of"):
        any2seq.load(trained.dir, dtype="float16")
