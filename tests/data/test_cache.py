"""The token cache: equals direct encoding, is reused on the second run, survives interruptions."""
import os
import random

import numpy as np
import pytest

from any2seq.data.cache import TokenArray, encode_cached, write_token_array
from any2seq.data.tokenizer import train_tokenizer
from any2seq.errors import UserError

WORDS = "ein zwei drei Hund Katze läuft über die Straße, Mann Frau spielt im Park. Kinder essen Äpfel!".split()


def write_corpus(path, n_lines, seed=0):
    rng = random.Random(seed)
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(0, 12))) for _ in range(n_lines)]  # some empty
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    write_corpus(folder / "train.txt", 300)
    return train_tokenizer([folder / "train.txt"], folder / "spm.model", vocab_size=80)


def cache_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_cache_equals_direct_encoding(tmp_path, tokenizer):
    lines = write_corpus(tmp_path / "text.de", 95)
    array = encode_cached(tmp_path / "text.de", tokenizer, tmp_path / "cache", chunk_lines=10)
    expected = tokenizer.encode(lines)
    assert len(array) == len(lines)
    assert [array[i].tolist() for i in range(len(array))] == expected
    assert array[-1].tolist() == expected[-1]
    assert array.lengths.tolist() == [len(ids) for ids in expected]
    assert array.ids.dtype == np.uint16 and array.offsets.dtype == np.int64
    [key] = {p.stem for p in (tmp_path / "cache").iterdir()}
    assert cache_files(tmp_path / "cache") == [f"{key}.ids", f"{key}.offsets"]  # no temp files left
    with pytest.raises(IndexError):
        array[len(lines)]


def test_second_call_reuses_the_cache(tmp_path, tokenizer, monkeypatch):
    write_corpus(tmp_path / "text.de", 40)
    first = encode_cached(tmp_path / "text.de", tokenizer, tmp_path / "cache")
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}

    def fail(lines):
        raise AssertionError("encoded again")

    monkeypatch.setattr(tokenizer, "encode", fail)
    second = encode_cached(tmp_path / "text.de", tokenizer, tmp_path / "cache")
    assert np.array_equal(second.ids, first.ids) and np.array_equal(second.offsets, first.offsets)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == stamps


def test_changed_text_is_encoded_again(tmp_path, tokenizer):
    write_corpus(tmp_path / "text.de", 40, seed=1)
    encode_cached(tmp_path / "text.de", tokenizer, tmp_path / "cache")
    lines = write_corpus(tmp_path / "text.de", 41, seed=2)
    array = encode_cached(tmp_path / "text.de", tokenizer, tmp_path / "cache")
    assert [array[i].tolist() for i in range(len(array))] == tokenizer.encode(lines)
    assert len(list((tmp_path / "cache").iterdir())) == 4  # two keys, two files each


@pytest.mark.parametrize("damage", ["no offsets", "short offsets", "short ids"])
def test_half_written_cache_is_rebuilt(tmp_path, tokenizer, damage):
    lines = write_corpus(tmp_path / "text.de", 30)
    array = encode_cached(tmp_path / "text.de", tokenizer, tmp_path / "cache")
    ids, offsets = f"{array.name}.ids", f"{array.name}.offsets"
    del array
    if damage == "no offsets":  # stopped between the two renames
        os.remove(offsets)
    else:
        path = offsets if damage == "short offsets" else ids
        os.truncate(path, os.path.getsize(path) - 4)
    rebuilt = encode_cached(tmp_path / "text.de", tokenizer, tmp_path / "cache")
    assert [rebuilt[i].tolist() for i in range(len(rebuilt))] == tokenizer.encode(lines)


def test_large_vocabularies_use_int32(tmp_path):
    seqs = [[70_000, 3, 65_535], [], [123_456]]
    array = write_token_array(tmp_path / "big", [seqs[:2], seqs[2:]], vocab_size=200_000)
    assert array.ids.dtype == np.int32
    assert [array[i].tolist() for i in range(3)] == seqs
    assert array.lengths.tolist() == [3, 0, 1]
    assert (tmp_path / "big.ids").stat().st_size == 4 * 4
    reopened = TokenArray(tmp_path / "big")
    assert [reopened[i].tolist() for i in range(3)] == seqs


def test_bad_text_leaves_no_cache_behind(tmp_path, tokenizer):
    (tmp_path / "bad.de").write_bytes(b"ein Hund\n" * 30 + b"die \xff Katze\n")
    with pytest.raises(UserError, match=f"^{tmp_path / 'bad.de'}:31: not valid UTF-8"):
        encode_cached(tmp_path / "bad.de", tokenizer, tmp_path / "cache", chunk_lines=7)
    assert list((tmp_path / "cache").iterdir()) == []


def test_empty_corpus_and_missing_file(tmp_path, tokenizer):
    (tmp_path / "empty.de").write_text("")
    assert len(encode_cached(tmp_path / "empty.de", tokenizer, tmp_path / "cache")) == 0
    with pytest.raises(UserError, match="no such file"):
        encode_cached(tmp_path / "missing.de", tokenizer, tmp_path / "cache")
