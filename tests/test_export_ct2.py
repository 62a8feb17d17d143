"""CTranslate2 export: the converted model decodes exactly as the any2seq model it came from."""
from __future__ import annotations

import pytest

ctranslate2 = pytest.importorskip("ctranslate2")

import any2seq  # noqa: E402
from any2seq.config import config_from_dict  # noqa: E402
from any2seq.errors import UserError  # noqa: E402
from any2seq.export import export_ct2, translate_ct2  # noqa: E402
from any2seq.export.ct2 import check_exportable  # noqa: E402


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    return export_ct2(trained.dir, tmp_path_factory.mktemp("ct2") / "model")


def test_greedy_equals_any2seq(trained, exported, corpus):
    # The memorised pairs end in eos; the unseen test lines mostly run to their length limit.
    lines = [src for src, _ in trained.pairs] + (corpus / "test.de").read_text(encoding="utf-8").splitlines()
    ours = any2seq.load(trained.dir).translate(lines, beam=1)
    theirs = translate_ct2(exported, lines, beam=1, n_best=1, max_len=256, batch_size=7)
    assert theirs == ours


def test_beam_on_memorised_pairs(trained, exported):
    # Where no beam reaches the length limit, both searches keep the same best hypothesis.
    lines = [src for src, _ in trained.pairs]
    assert translate_ct2(exported, lines, beam=5) == any2seq.load(trained.dir).translate(lines, beam=5)
    n_best = translate_ct2(exported, lines[:3], beam=4, n_best=2)
    assert [len(n) for n in n_best] == [2, 2, 2]


def test_export_refuses_a_non_empty_out(trained, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not an empty directory"):
        export_ct2(trained.dir, tmp_path)


def test_unsupported_models_name_the_key(tmp_path):
    rnn = config_from_dict({"model": {"encoder": {"kind": "gru"}, "decoder": {"kind": "gru"}}})
    with pytest.raises(UserError, match="model.encoder.kind"):
        check_exportable(rnn, tmp_path)
    heads = config_from_dict({"model": {"encoder": {"heads": 4}, "decoder": {"heads": 8}}})
    with pytest.raises(UserError, match="heads"):
        check_exportable(heads, tmp_path)
    with pytest.raises(UserError, match="model.json"):
        export_ct2(tmp_path, tmp_path / "out")


def _cli(capsys, monkeypatch, *args, stdin: str = "") -> tuple[int, str, str]:
    import io
    import sys

    from any2seq.cli import main

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8"))
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_export_then_translate_with_ct2(trained, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ct2"
    code, _, err = _cli(capsys, monkeypatch, "export", "--ct2", trained.dir, out)
    assert code == 0 and "--engine ct2" in err
    lines = [src for src, _ in trained.pairs[:6]]
    stdin = "".join(line + "\n" for line in lines)
    code, theirs, _ = _cli(capsys, monkeypatch, "translate", "--model", out, "--engine", "ct2", "--beam", 1,
                           stdin=stdin)
    assert code == 0
    code, ours, _ = _cli(capsys, monkeypatch, "translate", "--model", trained.dir, "--beam", 1, stdin=stdin)
    assert code == 0 and theirs == ours and len(theirs.splitlines()) == len(lines)
    code, n_best, _ = _cli(capsys, monkeypatch, "translate", "--model", out, "--engine", "ct2", "--beam", 3,
                           "--n-best", 2, stdin=stdin)
    assert code == 0 and all(len(line.split("\t")) == 2 for line in n_best.splitlines())


def test_cli_ct2_errors_are_one_line(trained, tmp_path, capsys, monkeypatch):
    code, _, err = _cli(capsys, monkeypatch, "translate", "--model", trained.dir, "--engine", "ct2", stdin="x\n")
    assert code == 2 and "any2seq export" in err and len(err.splitlines()) == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    code, _, err = _cli(capsys, monkeypatch, "export", "--ct2", trained.dir, tmp_path / "full")
    assert code == 2 and "not an empty directory" in err
    code, _, err = _cli(capsys, monkeypatch, "translate", "--model", tmp_path, "--engine", "ct2", "--sample",
                        stdin="x\n")
    assert code == 2 and "--sample" in err
    code, _, err = _cli(capsys, monkeypatch, "translate", "--model", tmp_path, "--engine", "ct2", "--bf16",
                        stdin="x\n")
    assert code == 2 and "--bf16" in err


def test_workers_translate_batches_at_once_with_the_same_outputs(trained, exported, corpus):
    from any2seq.export.ct2 import CT2Translator

    lines = (corpus / "test.de").read_text(encoding="utf-8").splitlines()
    one = CT2Translator(exported, threads=2).translate(lines, beam=3, batch_size=4)
    two = CT2Translator(exported, threads=2, workers=2)
    assert two.translator.num_translators == 2
    assert two.translate(lines, beam=3, batch_size=4) == one
