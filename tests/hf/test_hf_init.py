"""train.init and --resume on a run whose source side is a Hugging Face tokenizer (``hf_tokenizer/``):
the new run carries it, so neither the init run nor the HF folder is needed afterwards."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="transformers is not installed (pip install 'any2seq[hf]')")

from any2seq.cli import main  # noqa: E402
from any2seq.hf.source_tokenizer import FOLDER  # noqa: E402
from any2seq.train.checkpoint import checkpoint_dirs  # noqa: E402

from .test_hf_encoder import saved, small_corpus, train_args  # noqa: E402,F401 (saved: a fixture)
from .tiny_encoders import ROOT  # noqa: E402

STEPS = ["train.max_steps=2", "train.valid_every=2", "train.log_every=1"]


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def evaluate(run_dir: Path, tmp_path: Path, capsys) -> dict:
    (tmp_path / "t.de").write_text("Ein Hund läuft.\n", encoding="utf-8")
    (tmp_path / "t.en").write_text("A dog runs.\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run_dir), "--json", "--beam", "1", "--src", str(tmp_path / "t.de"),
                 "--ref", str(tmp_path / "t.en")]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_init_carries_the_hf_tokenizer_and_the_run_then_stands_alone(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    folder = Path(shutil.copytree(saved("bert"), tmp_path / "bert"))
    data = f"data.root={small_corpus(tmp_path / 'data', lines=200)}"
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(train_args("translation_bert", folder, first, data, *STEPS)) == 0
    assert main(train_args("translation_bert", folder, second, data, *STEPS, f"train.init={first}")) == 0
    assert folder_files(second / FOLDER) == folder_files(first / FOLDER)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left

    shutil.rmtree(first)  # the new run alone loads and decodes
    folder.rename(tmp_path / "gone")
    assert isinstance(evaluate(second, tmp_path, capsys)["bleu"], float)
    # and continues from its own files: the config it saved names everything the encoder needs
    assert main(["train", str(second / "config.yaml"), "--out", str(second), "--no-progress", "--resume",
                 "--set", "train.max_steps=3"]) == 0
    assert json.loads((checkpoint_dirs(second)[-1] / "trainer.json").read_text())["step"] == 3
    # or the command that started it, naming the HF folder that is gone: the run's config holds its config.json
    again = [*STEPS[1:], "train.max_steps=4", f"train.init={first}"]
    assert main(train_args("translation_bert", folder, second, data, *again) + ["--resume"]) == 0
    assert json.loads((checkpoint_dirs(second)[-1] / "trainer.json").read_text())["step"] == 4
