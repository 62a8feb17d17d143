"""`any2seq export --hf`: AutoModelForSeq2SeqLM/AutoTokenizer load the export and HF generate gives
any2seq's greedy and beam-5 outputs; import -> export -> import gives the same weights bit for bit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install 'any2seq[hf]')")

from any2seq.cli import main  # noqa: E402
from any2seq.config import config_from_dict  # noqa: E402
from any2seq.errors import UserError  # noqa: E402
from any2seq.hf.export import check_exportable  # noqa: E402
from any2seq.inference import SearchOptions, decode_ids  # noqa: E402
from any2seq.modeldir import load_model  # noqa: E402

from .helpers import hf_generate  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MAX_NEW = 40


@pytest.fixture(scope="module")
def native(corpus, tmp_path_factory) -> Path:
    """A pre-LN any2seq model (the tiny config with one shared embedding) that memorised 20 pairs."""
    out = tmp_path_factory.mktemp("native") / "run"
    sets = [f"data.root={corpus}", "tokenizer.vocab_size=100", "train.max_steps=300", "train.valid_every=100",
            "train.warmup=30", "train.label_smoothing=0", "train.threads=1", "model.share_embeddings=true"]
    assert main(["train", str(REPO / "configs/tiny/translation.yaml"), "--out", str(out), "--no-progress",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    return out


def _export(model_dir: Path, out: Path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    assert main(["export", "--hf", str(model_dir), str(out)]) == 0
    return AutoModelForSeq2SeqLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)


def _ours(model_dir: Path, lines: list[str], beam: int) -> list[list[int]]:
    model, toks, _, _ = load_model(model_dir)
    opts = SearchOptions(beam=beam, max_len=MAX_NEW, max_len_a=0, max_len_b=MAX_NEW)
    return [n_best[0].tokens for n_best in decode_ids(model, toks.src.encode(lines), opts)]


def test_pre_ln_model_exports_as_pegasus_and_generates_the_same(native, sentences, tmp_path):
    hf, tok = _export(native, tmp_path / "hf")
    assert type(hf).__name__ == "PegasusForConditionalGeneration"
    _, toks, cfg, _ = load_model(native)
    assert tok(sentences)["input_ids"] == toks.src.encode(sentences)  # tokenizer.json = the sentencepiece model
    generation = json.loads((tmp_path / "hf" / "generation_config.json").read_text())
    assert (generation["num_beams"], generation["early_stopping"]) == (cfg.decode.beam, True)
    for beam in (1, 5):
        theirs = hf_generate(hf, tok, sentences, MAX_NEW, num_beams=beam)  # the export's own generation config
        ours = _ours(native, sentences, beam)
        assert len({len(o) for o in ours}) >= 5
        same = sum(a == b for a, b in zip(theirs, ours))
        assert same >= 199, f"beam {beam}: {same}/200 identical"


def test_imported_marian_exports_back_and_generates_the_same(imported, sentences, tmp_path):
    hf, tok = _export(imported, tmp_path / "hf")
    assert (type(hf).__name__, type(tok).__name__) == ("MarianMTModel", "MarianTokenizer")
    model, toks, _, _ = load_model(imported)
    for beam in (1, 5):
        theirs = tok.batch_decode(hf_generate(hf, tok, sentences, MAX_NEW, num_beams=beam), skip_special_tokens=True)
        ours = toks.tgt.decode(_ours(imported, sentences, beam))
        same = sum(a == b for a, b in zip(theirs, ours))
        assert same >= 199, f"beam {beam}: {same}/200 identical"


def test_import_export_import_is_bit_identical(imported, tmp_path):
    assert main(["export", "--hf", str(imported), str(tmp_path / "hf")]) == 0
    assert main(["import-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "again")]) == 0
    before, after = load_model(imported)[0].state_dict(), load_model(tmp_path / "again")[0].state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "again" / "config.yaml").read_text() == (imported / "config.yaml").read_text()


@pytest.mark.parametrize("model, key", [
    ({"encoder": {"kind": "gru"}, "decoder": {"kind": "gru"}}, "model.encoder.kind/decoder.kind"),
    ({"encoder": {"positions": "learned"}, "decoder": {"positions": "learned"}, "share_embeddings": True},
     "model.encoder.positions"),
    ({"share_embeddings": False}, "model.share_embeddings"),
])
def test_unsupported_shapes_are_refused_with_the_key(model, key, tmp_path):
    cfg = config_from_dict({"model": model})
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        check_exportable(cfg, tmp_path)


def test_cli_refusal_is_one_line(trained, tmp_path, capsys):
    assert main(["export", "--hf", str(trained.dir), str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.share_embeddings" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "hf").exists()
