"""Data parallel under torchrun (2 CPU processes, gloo): the same updates as one process, files from rank 0 only."""
import socket
import sys

import pytest
import torch
import torch.distributed as torch_dist
from safetensors.torch import load_file

from any2seq.modeldir import load_model
from any2seq.train.optim import make_optimizer

from .helpers import (checkpoint, random_batch, records, run, tiny_model, train_here, weights, write_config,
                      write_corpus)

needs_gloo = pytest.mark.skipif(
    not (torch_dist.is_available() and torch_dist.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend")

STEPS = 4


def torchrun(*args: str) -> list[str]:
    with socket.socket() as s:  # a free port: the OS picks one, we release it for torchrun
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(port), "-m", "any2seq", *args]


def moments(run_dir, step: int) -> dict[str, dict[str, torch.Tensor]]:
    """Adam's exp_avg and exp_avg_sq by parameter name (the checkpoint keys them by position)."""
    model, _, cfg, _ = load_model(run_dir)
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in make_optimizer(model, cfg.train).param_groups for p in group["params"]]
    tensors = load_file(str(checkpoint(run_dir, step) / "optimizer.safetensors"))
    return {name: {k: tensors[f"{i}.{k}"] for k in ("exp_avg", "exp_avg_sq")} for i, name in enumerate(order)}


def files(run_dir) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def test_shards_split_the_global_batch_into_disjoint_rows():
    batch = random_batch(0, rows=7)
    shards = [batch.shard(rank, 2) for rank in range(2)]
    assert [len(s.src) for s in shards] == [4, 3]
    assert sum(s.n_tokens for s in shards) == batch.n_tokens
    torch.testing.assert_close(shards[1].tgt_lengths, batch.tgt_lengths[1::2])


def test_an_empty_shard_still_gives_every_parameter_a_gradient():
    """With fewer rows than ranks a rank trains on nothing; DDP still needs its (zero) gradients."""
    model = tiny_model(0)
    empty = random_batch(0, rows=1).shard(1, 2)
    loss, n_tokens = model.loss(empty)
    loss.backward()
    assert (float(loss.detach()), n_tokens) == (0.0, 0)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


@needs_gloo
def test_two_processes_make_the_updates_of_one_with_the_same_global_batch(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", write_corpus(tmp_path / "data"), dropout=0.0,
                          max_steps=STEPS, valid_every=2, log_every=1, keep_last=STEPS)
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    proc = run(torchrun("train", str(config), "--no-progress", "--out", str(ddp)), timeout=240)
    assert "x 2 process(es)" in proc.stderr
    train_here(config, single)

    # Adam's moments hold the gradients as they were: with rows rank::2 per process and the loss
    # scaled by world / global tokens, they are the single process's (a wrong scale would show here).
    m_ddp, m_single = moments(ddp, STEPS), moments(single, STEPS)
    for name, m in m_single.items():
        torch.testing.assert_close(m_ddp[name]["exp_avg"], m["exp_avg"], rtol=1e-3, atol=1e-7, msg=name)
        torch.testing.assert_close(m_ddp[name]["exp_avg_sq"], m["exp_avg_sq"], rtol=1e-3, atol=1e-11, msg=name)

    # Adam divides by sqrt(exp_avg_sq): where the true gradient is zero (attention key biases, which
    # softmax ignores) it turns float noise into steps of +-lr, different in one and two processes.
    # Such entries change no output and may differ; every entry with a real gradient must match.
    w_ddp, w_single = weights(checkpoint(ddp, STEPS)), weights(checkpoint(single, STEPS))
    differing = 0
    for name, m in m_single.items():
        real = m["exp_avg_sq"].sqrt() > 1e-7
        torch.testing.assert_close(w_ddp[name][real], w_single[name][real], rtol=0, atol=1e-5, msg=name)
        differing += int(((w_ddp[name] - w_single[name]).abs() > 1e-5).sum())
    assert differing < 0.01 * sum(w.numel() for w in w_single.values())
    ddp_valid, single_valid = records(ddp, "valid_loss"), records(single, "valid_loss")
    assert [r["step"] for r in ddp_valid] == [2, 4]
    assert [r["valid_loss"] for r in ddp_valid] == pytest.approx([r["valid_loss"] for r in single_valid], rel=1e-5)

    # Only rank 0 writes: each record once, and the same files as a single process writes.
    assert [r["step"] for r in records(ddp, "loss")] == list(range(1, STEPS + 1))
    assert files(ddp) == files(single)


@needs_gloo
def test_a_resumed_two_process_run_continues_exactly(tmp_path):
    # Dropout > 0: each rank draws its own masks from its own generator, and both must come back.
    config = write_config(tmp_path / "tiny.yaml", write_corpus(tmp_path / "data"), dropout=0.2,
                          max_steps=STEPS, valid_every=2, log_every=2)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run(torchrun("train", str(config), "--no-progress", "--out", str(whole)), timeout=240)
    run(torchrun("train", str(config), "--no-progress", "--out", str(resumed), "--set", "train.max_steps=2"),
        timeout=240)
    run(torchrun("train", str(config), "--no-progress", "--out", str(resumed), "--resume"), timeout=240)
    a, b = weights(checkpoint(whole, STEPS)), weights(checkpoint(resumed, STEPS))
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert different == [], f"the resumed run differs in {len(different)} tensors: {different[:3]}"
    rng = load_file(str(checkpoint(whole, STEPS) / "optimizer.safetensors"))
    assert not torch.equal(rng["rng.0.torch"], rng["rng.1.torch"])
