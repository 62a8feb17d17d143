"""train.init starts a run from another run's weights (fine-tuning), and says so when they do not fit."""
from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from any2seq.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = "configs/tiny/video_prediction.yaml"


def test_a_run_starts_from_the_weights_of_another(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", TINY, "--out", str(first), "--no-progress", "--set", "train.max_steps=2"]) == 0
    # no steps at all: the second run's best weights are the ones it was given
    assert main(["train", TINY, "--out", str(second), "--no-progress", "--set", f"train.init={first}",
                 "--set", "train.max_steps=1", "--set", "train.lr=1e-12", "--set", "model.decoder.train_feed=own"]) == 0
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] - b[k]).abs().max() < 1e-6 for k in a)


def test_weights_of_another_shape_are_refused_by_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    first = tmp_path / "first"
    assert main(["train", TINY, "--out", str(first), "--no-progress", "--set", "train.max_steps=1"]) == 0
    capsys.readouterr()
    assert main(["train", TINY, "--out", str(tmp_path / "b"), "--no-progress", "--set", f"train.init={first}",
                 "--set", "model.decoder.ff=96"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["train", TINY, "--out", str(tmp_path / "c"), "--no-progress", "--set", f"train.init={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "train.init" in err and "no model.safetensors" in err
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_a_text_run_inherits_the_tokenizer_so_ids_keep_their_meaning(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    first, second = tmp_path / "first", tmp_path / "second"
    tiny = "configs/tiny/speech.yaml"
    assert main(["train", tiny, "--out", str(first), "--no-progress", "--set", "train.max_steps=1",
                 "--set", "data.max_digits=1"]) == 0
    # other data: a tokenizer trained on it could order the words differently; the first run's is kept
    assert main(["train", tiny, "--out", str(second), "--no-progress", "--set", "train.max_steps=1",
                 "--set", f"train.init={first}"]) == 0
    for name in [p.name for p in first.glob("spm*.model")]:
        assert (second / name).read_bytes() == (first / name).read_bytes()
