"""Checkpoints: atomic writes, crash safety, keep_last, exact round trips, and no unpickling anywhere."""
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from any2seq.config import TrainConfig
from any2seq.errors import UserError
from any2seq.fileio import atomic_write
from any2seq.train.checkpoint import checkpoint_dirs, clean_partial, load_checkpoint, load_tensors, save_checkpoint
from any2seq.train.optim import make_optimizer

from .helpers import REPO, random_batch, tiny_model


def trained(seed: int = 0, steps: int = 3):
    """A model and its AdamW after a few steps, so that Adam's moments and step are not trivial."""
    model = tiny_model(seed)
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.01))
    for i in range(steps):
        optimizer.zero_grad()
        loss, n = model.loss(random_batch(i))
        (loss / n).backward()
        optimizer.step()
    return model, optimizer


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}"


# --- atomic writes ------------------------------------------------------------------------------

@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch, failing):
    path = tmp_path / "model.json"
    atomic_write(path, "old contents\n")

    def crash(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(UserError, match="model.json: cannot write \\(disk full\\)"):  # one line, no traceback
        atomic_write(path, "new contents that never land\n")
    monkeypatch.undo()
    assert path.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]  # no temporary file left behind


# --- checkpoint directories ---------------------------------------------------------------------

def test_save_checkpoint_keeps_only_the_newest_keep_last(tmp_path):
    model, optimizer = trained(steps=1)
    for step in range(1, 6):
        save_checkpoint(tmp_path, step, model, optimizer, {"step": step}, keep_last=2)
    assert checkpoint_dirs(tmp_path) == [step_dir(tmp_path, 4), step_dir(tmp_path, 5)]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000004", "step_00000005"]
    assert sorted(p.name for p in step_dir(tmp_path, 5).iterdir()) == [
        "model.safetensors", "optimizer.safetensors", "trainer.json"]


def test_a_crash_before_the_rename_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer = trained(steps=1)
    save_checkpoint(tmp_path, 1, model, optimizer, {"step": 1}, keep_last=1)
    real_replace = os.replace

    def killed_before_rename(src, dst):  # files inside the new directory are written; the process dies here
        if Path(src).is_dir() and Path(src).name.endswith(".tmp"):
            raise KeyboardInterrupt
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, model, optimizer, {"step": 2}, keep_last=1)
    monkeypatch.undo()

    assert (tmp_path / "checkpoints" / "step_00000002.tmp" / "model.safetensors").is_file()
    assert checkpoint_dirs(tmp_path) == [step_dir(tmp_path, 1)]  # the .tmp is not a checkpoint
    assert load_checkpoint(step_dir(tmp_path, 1), tiny_model(1), make_optimizer(tiny_model(1), TrainConfig()))
    clean_partial(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000001"]


def test_a_crash_while_deleting_an_old_checkpoint_never_lists_a_half_deleted_one(tmp_path, monkeypatch):
    model, optimizer = trained(steps=1)
    save_checkpoint(tmp_path, 1, model, optimizer, {"step": 1}, keep_last=1)
    real_rmtree = shutil.rmtree

    def killed_mid_delete(path, *args, **kwargs):
        if Path(path).name.startswith("step_00000001"):
            (Path(path) / "model.safetensors").unlink()  # half of it is gone when the process dies
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)
    monkeypatch.setattr(shutil, "rmtree", killed_mid_delete)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, model, optimizer, {"step": 2}, keep_last=1)
    monkeypatch.undo()

    assert checkpoint_dirs(tmp_path) == [step_dir(tmp_path, 2)]
    clean_partial(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000002"]


def test_clean_partial_removes_leftovers_and_nothing_else(tmp_path):
    model, optimizer = trained(steps=1)
    save_checkpoint(tmp_path, 3, model, optimizer, {"step": 3}, keep_last=3)
    (tmp_path / "checkpoints" / "step_00000004.tmp").mkdir()
    (tmp_path / "checkpoints" / "step_00000004.tmp" / ".model.safetensors.123.tmp").write_bytes(b"half")
    (tmp_path / ".model.safetensors.456.tmp").write_bytes(b"half")
    (tmp_path / "config.yaml").write_text("task: translation\n")
    clean_partial(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "config.yaml"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000003"]
    clean_partial(tmp_path / "no-run-here")  # nothing to clean is fine


# --- round trips --------------------------------------------------------------------------------

def test_optimizer_state_round_trips(tmp_path):
    model, optimizer = trained(steps=3)
    ckpt = save_checkpoint(tmp_path, 3, model, optimizer, {"step": 3}, keep_last=1)
    model2 = tiny_model(seed=7)
    optimizer2 = make_optimizer(model2, TrainConfig(weight_decay=0.01))
    trainer = load_checkpoint(ckpt, model2, optimizer2)
    assert trainer["step"] == 3

    saved, loaded = optimizer.state_dict(), optimizer2.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]
    assert saved["state"].keys() == loaded["state"].keys() and len(saved["state"]) > 0
    for i, state in saved["state"].items():
        assert state.keys() == loaded["state"][i].keys() == {"step", "exp_avg", "exp_avg_sq"}
        for name, value in state.items():
            assert torch.equal(value, loaded["state"][i][name]), (i, name)
    assert float(loaded["state"][0]["step"]) == 3

    # ... and the next update (bias correction uses the step) is the same on both.
    for m, opt in ((model, optimizer), (model2, optimizer2)):
        opt.zero_grad()
        loss, n = m.loss(random_batch(99))
        (loss / n).backward()
        opt.step()
    for (name, p), p2 in zip(model.named_parameters(), model2.parameters()):
        assert torch.equal(p, p2), name


def test_a_checkpoint_gives_identical_model_outputs(tmp_path):
    model, optimizer = trained(steps=2)
    ckpt = save_checkpoint(tmp_path, 2, model, optimizer, {"step": 2}, keep_last=1)
    model2 = tiny_model(seed=5)
    load_checkpoint(ckpt, model2, make_optimizer(model2, TrainConfig()))
    batch = random_batch(42)
    model.eval(), model2.eval()
    with torch.no_grad():
        assert torch.equal(model(batch.src, batch.tgt, batch.src_lengths)[0],
                           model2(batch.src, batch.tgt, batch.src_lengths)[0])
    # the tied output projection still shares the target embedding after loading
    assert model2.decoder.proj.weight is model2.decoder.embed.tokens.weight


def test_load_checkpoint_restores_the_random_number_generator(tmp_path):
    model, optimizer = trained(steps=1)
    torch.manual_seed(123)
    ckpt = save_checkpoint(tmp_path, 1, model, optimizer, {"step": 1}, keep_last=1)
    expected = torch.rand(8)  # what dropout would draw next
    torch.manual_seed(999)
    load_checkpoint(ckpt, tiny_model(3), make_optimizer(tiny_model(3), TrainConfig()))
    assert torch.equal(torch.rand(8), expected)


# --- nothing is unpickled -----------------------------------------------------------------------

def test_a_pickle_is_refused_not_loaded(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, path)  # a torch pickle under a safetensors name
    with pytest.raises(UserError, match="never unpickles"):
        load_tensors(path)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")  # truncated safetensors
    with pytest.raises(UserError, match="not a valid safetensors"):
        load_tensors(path)


UNPICKLING = re.compile(r"torch\.load\(|pickle\.loads?\(|import pickle|from pickle|allow_pickle\s*=\s*True"
                        r"|(gather|broadcast|scatter|send|recv)_object|weights_only\s*=\s*False")


def test_no_source_file_can_unpickle():
    """torch.load, pickle, numpy's allow_pickle and torch.distributed's *_object collectives all unpickle."""
    sources = sorted((REPO / "src" / "any2seq").rglob("*.py"))
    assert len(sources) > 10
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in sources
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if UNPICKLING.search(line)]
    # The one exception: a foreign pytorch_model.bin (import-hf) read with weights_only=True, which
    # refuses every pickled object but tensors and plain containers (tests/hf test its payload refusal).
    allowed = ["src/any2seq/hf/weights.py:31: tensors = torch.load(bin_, map_location=\"cpu\", weights_only=True)"]
    assert [h for h in hits if h not in allowed] == []
