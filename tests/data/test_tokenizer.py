"""SentencePiece tokenizers: fixed special ids, lossless round trip, reproducible training."""
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import any2seq
from any2seq.data.tokenizer import Tokenizer, train_tokenizer
from any2seq.errors import UserError

WORDS = "ein zwei drei Hund Katze läuft über die Straße, Mann Frau spielt im Park. Kinder essen Äpfel!".split()


def corpus(path, n_lines=300, seed=0):
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))) for _ in range(n_lines)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    text = corpus(folder / "train.txt")
    return train_tokenizer([text], folder / "spm.model", vocab_size=80), text


def test_round_trip(trained):
    tokenizer, _ = trained
    lines = ["ein Hund läuft über die Straße.", "Kinder essen Äpfel!", "Katzenmann spielt", ""]
    ids = tokenizer.encode(lines)
    assert tokenizer.decode(ids) == lines
    assert all(isinstance(i, int) for seq in ids for i in seq)


def test_special_ids_are_fixed(trained):
    tokenizer, _ = trained
    assert (Tokenizer.PAD, Tokenizer.BOS, Tokenizer.EOS, Tokenizer.UNK) == (0, 1, 2, 3)
    assert [tokenizer.sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    [ids] = tokenizer.encode(["ein Hund"])
    assert ids and min(ids) > Tokenizer.UNK  # encode adds no bos/eos
    assert Tokenizer.UNK in tokenizer.encode(["ein Ω"])[0]  # a character never seen in training


def test_decode_stops_at_eos_and_skips_pad_and_bos(trained):
    tokenizer, _ = trained
    ids = tokenizer.encode(["die Katze", "im Park"])
    row = [Tokenizer.BOS, *ids[0], Tokenizer.EOS, *ids[1], Tokenizer.PAD]
    padded = [Tokenizer.BOS, *ids[1], Tokenizer.PAD, Tokenizer.PAD]
    assert tokenizer.decode([row, padded]) == ["die Katze", "im Park"]
    assert tokenizer.decode(torch.tensor([row])) == tokenizer.decode([np.array(row)]) == ["die Katze"]


def test_pieces_and_vocab(trained):
    tokenizer, _ = trained
    assert tokenizer.vocab_size == 80
    assert "".join(tokenizer.pieces("ein Hund")).replace("\u2581", " ").strip() == "ein Hund"


def test_load_matches_trained_model(trained, tmp_path):
    tokenizer, _ = trained
    path = tmp_path / "copy.model"
    path.write_bytes(tokenizer.model_bytes)
    loaded = Tokenizer.load(path)
    assert loaded.model_bytes == tokenizer.model_bytes
    assert loaded.encode(["Mann und Frau"]) == tokenizer.encode(["Mann und Frau"])


def varied_corpus(path, n_lines=400):
    """Many distinct random words, so that which sentences are sampled changes the model."""
    rng = random.Random(1)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyzäöü", k=rng.randint(2, 8))) for _ in range(200)]
    path.write_text("\n".join(" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(n_lines)))
    return path


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_training_is_deterministic(tmp_path, kind):
    # max_sentences below the corpus size exercises the random sample as well
    text = varied_corpus(tmp_path / "train.txt")
    first = train_tokenizer([text], tmp_path / "a.model", 60, kind=kind, max_sentences=150, seed=3)
    second = train_tokenizer([text], tmp_path / "b.model", 60, kind=kind, max_sentences=150, seed=3)
    assert first.model_bytes == second.model_bytes
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes() == first.model_bytes


def test_training_is_deterministic_across_processes(tmp_path):
    # sentencepiece's own sampler is seeded from the clock in each new process; ours must not be
    text = varied_corpus(tmp_path / "train.txt")
    here = train_tokenizer([text], tmp_path / "here.model", 60, max_sentences=150, seed=3)
    full = train_tokenizer([text], tmp_path / "full.model", 60, max_sentences=10_000, seed=3)
    assert here.model_bytes != full.model_bytes  # the sample matters for this corpus
    code = (
        "import sys; from any2seq.data.tokenizer import train_tokenizer; "
        "train_tokenizer([sys.argv[1]], sys.argv[2], 60, max_sentences=150, seed=3)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(any2seq.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code, str(text), str(tmp_path / "there.model")], env=env, check=True)
    assert (tmp_path / "there.model").read_bytes() == here.model_bytes


def test_joint_training_reads_all_files(tmp_path):
    src = corpus(tmp_path / "src.txt", n_lines=100)
    tgt = tmp_path / "tgt.txt"
    tgt.write_text("Ωmega Ωmega\n" * 50, encoding="utf-8")
    tokenizer = train_tokenizer([src, tgt], tmp_path / "joint.model", 70)
    assert Tokenizer.UNK not in tokenizer.encode(["Ωmega"])[0]


def test_model_written_atomically_and_quietly(tmp_path, capfd):
    text = corpus(tmp_path / "train.txt", n_lines=100)
    (tmp_path / "out").mkdir()
    train_tokenizer([text], tmp_path / "out" / "spm.model", 60)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["spm.model"]  # no temp files left
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_vocab_too_large(tmp_path):
    text = corpus(tmp_path / "train.txt", n_lines=20)
    with pytest.raises(UserError, match="lower tokenizer.vocab_size"):
        train_tokenizer([text], tmp_path / "spm.model", 5000)
    assert not (tmp_path / "spm.model").exists()


def test_bad_training_data(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"gut\nschlecht \xff\n")
    with pytest.raises(UserError, match=f"^{bad}:2: not valid UTF-8"):
        train_tokenizer([bad], tmp_path / "spm.model", 60)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="no data"):
        train_tokenizer([empty], tmp_path / "spm.model", 60)
    with pytest.raises(UserError, match="tokenizer.kind"):
        train_tokenizer([bad], tmp_path / "spm.model", 60, kind="wordpiece")


def test_loading_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("hello\n")
    with pytest.raises(UserError, match=f"^{path}: not a sentencepiece model"):
        Tokenizer.load(path)
    with pytest.raises(UserError, match="no such file"):
        Tokenizer.load(tmp_path / "missing.model")
