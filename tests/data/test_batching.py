"""Batching: token budgets, full coverage, determinism, exact resumption, flat memory."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import any2seq
from any2seq.data.batching import Batch, BatchStream, collate, make_batches
from any2seq.data.cache import write_token_array
from any2seq.data.tokenizer import Tokenizer, train_tokenizer
from any2seq.errors import UserError


def token_array(path, seqs):
    return write_token_array(path, [seqs], vocab_size=1000)


def random_pairs(tmp_path, n, seed=0, max_len=40):
    rng = np.random.default_rng(seed)
    src = [rng.integers(4, 1000, rng.integers(1, max_len)).tolist() for _ in range(n)]
    tgt = [rng.integers(4, 1000, rng.integers(0, max_len)).tolist() for _ in range(n)]
    return token_array(tmp_path / "src", src), token_array(tmp_path / "tgt", tgt)


def padded_sizes(src_lengths, tgt_lengths):
    return np.maximum(np.asarray(src_lengths), np.asarray(tgt_lengths) + 1)


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 80)), min_size=1, max_size=300),
    batch_tokens=st.integers(1, 600),
    seed=st.integers(0, 3),
    epoch=st.integers(0, 3),
    shuffle=st.booleans(),
    max_sentences=st.one_of(st.none(), st.integers(1, 20)),
)
def test_batches_fit_the_budget_and_cover_every_index_once(lengths, batch_tokens, seed, epoch, shuffle, max_sentences):
    src_lengths, tgt_lengths = zip(*lengths)
    sizes = padded_sizes(src_lengths, tgt_lengths)
    batches = make_batches(src_lengths, tgt_lengths, batch_tokens, seed, epoch, shuffle, max_sentences)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) >= 1 and (max_sentences is None or len(batch) <= max_sentences)
        if len(batch) > 1:  # a lone sentence longer than the budget still gets a batch
            assert len(batch) * sizes[batch].max() <= batch_tokens


def test_same_seed_and_epoch_give_the_same_batches():
    rng = np.random.default_rng(0)
    src_lengths, tgt_lengths = rng.integers(1, 60, 5000), rng.integers(0, 60, 5000)
    make = lambda seed, epoch: [b.tolist() for b in make_batches(src_lengths, tgt_lengths, 500, seed, epoch)]
    assert make(1, 2) == make(1, 2)
    assert make(1, 2) != make(1, 3)
    assert make(1, 2) != make(2, 2)
    assert sorted(map(tuple, make(1, 2))) != sorted(map(tuple, make(1, 3)))  # not only reordered


def test_unshuffled_batches_are_sorted_by_length():
    rng = np.random.default_rng(0)
    src_lengths, tgt_lengths = rng.integers(1, 60, 2000), rng.integers(0, 60, 2000)
    batches = make_batches(src_lengths, tgt_lengths, 500, seed=0, epoch=0, shuffle=False)
    order = np.concatenate(batches)
    assert np.all(np.diff(padded_sizes(src_lengths, tgt_lengths)[order]) >= 0)
    again = make_batches(src_lengths, tgt_lengths, 500, seed=7, epoch=3, shuffle=False)
    assert [b.tolist() for b in batches] == [b.tolist() for b in again]


def test_bucketing_keeps_padding_low():
    rng = np.random.default_rng(0)
    src_lengths, tgt_lengths = rng.integers(1, 100, 20_000), rng.integers(0, 100, 20_000)
    sizes = padded_sizes(src_lengths, tgt_lengths)
    batches = make_batches(src_lengths, tgt_lengths, 4096, seed=0, epoch=0)
    padded = sum(len(b) * sizes[b].max() for b in batches)
    assert sizes.sum() / padded > 0.9  # random batches of this data would be about 0.6
    assert padded / len(batches) > 0.8 * 4096  # and the batches are full


def test_make_batches_scales_to_millions():
    rng = np.random.default_rng(0)
    src_lengths, tgt_lengths = rng.integers(1, 100, 2_000_000), rng.integers(0, 100, 2_000_000)
    # Vectorised, this takes well under a second; a per-sentence Python loop would take minutes and
    # show in the suite's duration. How fast it is belongs to benchmarks/, not to an assertion.
    batches = make_batches(src_lengths, tgt_lengths, 8192, seed=0, epoch=0)
    assert sum(map(len, batches)) == 2_000_000
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(2_000_000))  # each sentence once


def test_collate_pads_and_appends_eos(tmp_path):
    src = token_array(tmp_path / "src", [[5, 6, 7], [8], [9, 9]])
    tgt = token_array(tmp_path / "tgt", [[10], [11, 12, 13], []])
    batch = collate(src, tgt, np.array([1, 0, 2]))
    P, E = Tokenizer.PAD, Tokenizer.EOS
    assert batch.src.tolist() == [[8, P, P], [5, 6, 7], [9, 9, P]]
    assert batch.src_lengths.tolist() == [1, 3, 2]
    assert batch.tgt.tolist() == [[11, 12, 13, E], [10, E, P, P], [E, P, P, P]]
    assert batch.tgt_lengths.tolist() == [4, 2, 1]
    assert batch.n_tokens == 7
    assert all(t.dtype == torch.long for t in (batch.src, batch.src_lengths, batch.tgt, batch.tgt_lengths))


def test_collate_takes_plain_lists_too():
    src, tgt = [[5, 6], [7], [8, 8, 8]], [[9], [], [10, 11]]
    batch = collate(src, tgt, [2, 1])
    assert batch.src.tolist() == [[8, 8, 8], [7, 0, 0]] and batch.tgt.tolist() == [[10, 11, 2], [2, 0, 0]]
    assert batch.src.dtype == batch.tgt.dtype == torch.long


def test_a_shard_keeps_the_token_widths_that_pad_to_rounded(tmp_path):
    """train.pad_to bounds the shapes the model sees: the shard (every step's, world 1 included) once
    trimmed the rounding away, so the setting did nothing."""
    src, tgt = random_pairs(tmp_path, 7)
    batch = collate(src, tgt, np.arange(7), pad_to=8)
    assert batch.src.shape[1] % 8 == 0 and batch.tgt.shape[1] % 8 == 0
    assert batch.shard(0, 1, pad_to=8).src.shape == batch.src.shape
    assert batch.shard(0, 1, pad_to=8).tgt.shape == batch.tgt.shape
    for rank in range(3):
        shard = batch.shard(rank, 3, pad_to=8)
        assert shard.src.shape[1] == -(-int(shard.src_lengths.max()) // 8) * 8
        assert shard.tgt.shape[1] == -(-int(shard.tgt_lengths.max()) // 8) * 8
    waves = Batch(torch.rand(3, 50), torch.tensor([50, 21, 13]), torch.ones(3, 8, dtype=torch.long),
                  torch.tensor([8, 3, 5]))
    assert waves.shard(1, 2, pad_to=8).src.shape == (1, 21)  # samples are never rounded


def test_shard_partitions_the_rows(tmp_path):
    src, tgt = random_pairs(tmp_path, 7)
    batch = collate(src, tgt, np.arange(7))
    shards = [batch.shard(rank, 3) for rank in range(3)]
    assert sum(s.n_tokens for s in shards) == batch.n_tokens
    rows = lambda b, ids, lengths: [tuple(ids[i, : lengths[i]].tolist()) for i in range(len(lengths))]
    for rank, shard in enumerate(shards):
        assert rows(shard, shard.src, shard.src_lengths) == rows(batch, batch.src, batch.src_lengths)[rank::3]
        assert rows(shard, shard.tgt, shard.tgt_lengths) == rows(batch, batch.tgt, batch.tgt_lengths)[rank::3]
        assert shard.src.shape[1] == shard.src_lengths.max() and shard.tgt.shape[1] == shard.tgt_lengths.max()
    moved = shards[0].to("cpu")
    assert torch.equal(moved.src, shards[0].src) and torch.equal(moved.tgt_lengths, shards[0].tgt_lengths)


def take(stream, n):
    return [next(stream) for _ in range(n)]


def same(a, b):
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("src", "src_lengths", "tgt", "tgt_lengths"))


def test_stream_resumes_exactly_where_it_stopped(tmp_path):
    src, tgt = random_pairs(tmp_path, 300)
    stream = BatchStream(src, tgt, batch_tokens=200, seed=5)
    positions, batches = [], []
    for _ in range(3 * len(stream.batches)):
        positions.append(stream.position)
        batches.append(next(stream))
    per_epoch = len(BatchStream(src, tgt, batch_tokens=200, seed=5).batches)
    assert positions[per_epoch - 1] == (0, per_epoch - 1) and positions[per_epoch] == (1, 0)
    for k in (0, 7, per_epoch - 1, per_epoch, per_epoch + 3, len(positions) - 12):
        resumed = BatchStream(src, tgt, batch_tokens=200, seed=5, position=positions[k])
        assert all(same(a, b) for a, b in zip(take(resumed, 10), batches[k : k + 10]))
    other_seed = take(BatchStream(src, tgt, batch_tokens=200, seed=6), 10)
    assert not all(same(a, b) for a, b in zip(other_seed, batches))


def test_each_epoch_covers_every_pair_once_in_a_new_order(tmp_path):
    src, tgt = random_pairs(tmp_path, 300)
    stream = BatchStream(src, tgt, batch_tokens=200, seed=0)
    orders = []
    for _ in range(2):
        epoch, rows = stream.position[0], 0
        while stream.position[0] == epoch:
            rows += len(next(stream).src)
        assert rows == 300
        orders.append(np.concatenate(stream.batches).tolist())  # the epoch just started
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(300)) and orders[0] != orders[1]


def test_stream_leaves_out_long_pairs_and_empty_sources(tmp_path):
    src = token_array(tmp_path / "src", [[4] * 3, [], [4] * 9, [4] * 5, [4]])
    tgt = token_array(tmp_path / "tgt", [[5] * 2, [5], [5], [5] * 6, []])
    stream = BatchStream(src, tgt, batch_tokens=100, seed=0, max_len=5)
    assert sorted(np.concatenate(stream.batches).tolist()) == [0, 4]
    batch = next(stream)
    assert sorted(batch.src_lengths.tolist()) == [1, 3]
    with pytest.raises(UserError, match="data.max_len=0: none of the 5 training pairs"):
        BatchStream(src, tgt, batch_tokens=100, seed=0, max_len=0)


MEASURE = """
import json, resource, sys
from any2seq.data import BatchStream, Tokenizer, encode_cached
model, src_path, tgt_path, cache = sys.argv[1:]
tokenizer = Tokenizer.load(model)
src = encode_cached(src_path, tokenizer, cache, chunk_lines=2000)
tgt = encode_cached(tgt_path, tokenizer, cache, chunk_lines=2000)
stream, rows = BatchStream(src, tgt, batch_tokens=4096, seed=0), 0
while stream.position[0] == 0:
    rows += len(next(stream).src)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rows": rows}))
"""


def write_synthetic(path, n_lines, words, seed):
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for start in range(0, n_lines, 10_000):
            lengths = rng.integers(4, 20, min(10_000, n_lines - start))
            sentences = np.split(words[rng.integers(0, len(words), lengths.sum())], np.cumsum(lengths)[:-1])
            f.write("\n".join(" ".join(s) for s in sentences) + "\n")


def folder_bytes(folder):
    return sum(p.stat().st_size for p in Path(folder).iterdir())


def test_memory_stays_flat_when_the_corpus_grows_tenfold(tmp_path):
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyzäöü")
    words = np.array(["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(300)])
    n = 12_000
    for tag, lines in (("1x", n), ("10x", 10 * n)):
        write_synthetic(tmp_path / f"{tag}.src", lines, words, seed=1)
        write_synthetic(tmp_path / f"{tag}.tgt", lines, words, seed=2)
    train_tokenizer([tmp_path / "1x.src"], tmp_path / "spm.model", 1000, max_sentences=2000)
    env = {**os.environ, "PYTHONPATH": str(Path(any2seq.__file__).parents[1])}
    runs = {}
    for tag in ("1x", "10x"):  # one fresh process each, so that each peak is its own
        args = [tmp_path / "spm.model", tmp_path / f"{tag}.src", tmp_path / f"{tag}.tgt", tmp_path / f"cache{tag}"]
        out = subprocess.run([sys.executable, "-c", MEASURE, *map(str, args)], env=env, check=True,
                             capture_output=True, text=True).stdout
        runs[tag] = json.loads(out)
    assert runs["1x"]["rows"] == n and runs["10x"]["rows"] == 10 * n
    text = sum((tmp_path / f"10x.{side}").stat().st_size for side in ("src", "tgt"))
    growth = runs["10x"]["peak"] - runs["1x"]["peak"]
    # The memory-mapped cache pages count as resident once read; they are page cache, not heap.
    mapped = folder_bytes(tmp_path / "cache10x") - folder_bytes(tmp_path / "cache1x")
    mb = lambda b: f"{b / 2**20:.1f} MB"
    assert growth - mapped < 0.3 * text, (
        f"peak RSS {mb(runs['1x']['peak'])} -> {mb(runs['10x']['peak'])} (+{mb(growth)}, "
        f"of which {mb(mapped)} memory-mapped cache) for a 10x corpus of {mb(text)} text"
    )


def test_pad_to_rounds_widths_up_and_keeps_batches_within_budget(tmp_path):
    src, tgt = random_pairs(tmp_path, 300)
    plain, padded = BatchStream(src, tgt, batch_tokens=200, seed=5), BatchStream(src, tgt, 200, seed=5, pad_to=8)
    shapes = {1: set(), 8: set()}
    for stream, pad_to in ((plain, 1), (padded, 8)):
        seen = []
        for batch in take(stream, len(stream.batches)):
            assert batch.src.shape[1] % pad_to == 0 and batch.tgt.shape[1] % pad_to == 0
            assert len(batch.tgt_lengths) == 1 or batch.src.shape[0] * max(batch.src.shape[1], batch.tgt.shape[1]) <= 200
            # Padding is only padding: the ids within each row's length are the pair's own.
            for row in range(len(batch.tgt_lengths)):
                n = int(batch.src_lengths[row])
                assert (batch.src[row, n:] == 0).all() and (batch.src[row, :n] != 0).all()
            seen.extend(batch.tgt_lengths.tolist())
            shapes[pad_to].add((tuple(batch.src.shape), tuple(batch.tgt.shape)))
        assert sorted(seen) == sorted(int(n) + 1 for n in tgt.lengths[src.lengths > 0])  # every pair once
    assert len(shapes[8]) < len(shapes[1])
