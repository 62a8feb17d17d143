"""Learning-rate schedules, AdamW groups, gradient accumulation and label smoothing."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from any2seq.config import TrainConfig
from any2seq.data.batching import collate
from any2seq.interfaces import shift_right
from any2seq.train.distributed import Dist
from any2seq.train.loop import TrainerState, fit
from any2seq.train.optim import lr_at, make_optimizer

from .helpers import VOCAB, Stream, random_batch, records, tiny_model, train_here, write_config, write_corpus

LR, WARMUP, MAX_STEPS = 1e-3, 100, 1000


def cfg(schedule: str, **kwargs) -> TrainConfig:
    return TrainConfig(**{"lr": LR, "warmup": WARMUP, "max_steps": MAX_STEPS, "schedule": schedule, **kwargs})


# --- schedules ----------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["constant", "inverse_sqrt", "cosine"])
def test_warmup_climbs_linearly_to_lr_at_warmup(schedule):
    c = cfg(schedule)
    assert lr_at(1, c) == pytest.approx(LR / WARMUP)
    assert lr_at(WARMUP // 2, c) == pytest.approx(LR / 2)
    assert lr_at(WARMUP, c) == pytest.approx(LR)
    assert max(lr_at(s, c) for s in range(1, MAX_STEPS + 1)) == pytest.approx(LR)


def test_inverse_sqrt_decays_as_sqrt_warmup_over_step():
    c = cfg("inverse_sqrt")
    for step in (WARMUP, 2 * WARMUP, 4 * WARMUP, 10_000):
        assert lr_at(step, c) == pytest.approx(LR * math.sqrt(WARMUP / step))
    assert lr_at(4 * WARMUP, c) == pytest.approx(LR / 2)


def test_cosine_ends_at_min_lr_at_max_steps():
    c = cfg("cosine", min_lr=1e-5)
    assert lr_at(MAX_STEPS, c) == pytest.approx(1e-5)
    assert lr_at((WARMUP + MAX_STEPS) // 2, c) == pytest.approx((LR + 1e-5) / 2)  # half-way down
    assert lr_at(MAX_STEPS + 500, c) == pytest.approx(1e-5)  # and stays there
    lrs = [lr_at(s, c) for s in range(WARMUP, MAX_STEPS + 1)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_noam_peaks_at_warmup():
    c, d_model = cfg("noam", lr=2.0), 256
    lrs = {s: lr_at(s, c, d_model) for s in range(1, 4 * WARMUP)}
    assert max(lrs, key=lrs.get) == WARMUP
    assert lrs[WARMUP] == pytest.approx(2.0 * d_model ** -0.5 * WARMUP ** -0.5)


def test_constant_stays_at_lr():
    assert lr_at(MAX_STEPS * 5, cfg("constant")) == pytest.approx(LR)


def test_adamw_decays_matrices_only_and_sees_tied_weights_once():
    model = tiny_model(0)
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    ids = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len({id(p) for p in model.parameters()})


# --- the loss the loop optimises ------------------------------------------------------------------

def one_sgd_step(model, batches, tmp_path, **train) -> dict[str, torch.Tensor]:
    """Run ``fit`` for one step with plain SGD at lr 1 (whose update is minus the gradient, so any
    error in the loss's scale shows); returns the gradient the loop applied, by parameter name."""
    model = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    c = TrainConfig(lr=1.0, schedule="constant", warmup=0, clip=0.0, max_steps=1, valid_every=1, **train)
    state, reason = fit(model, optimizer, Stream(batches), lambda: {"loss": 1.0}, lambda metrics: None,
                        tmp_path, c, Dist(), TrainerState(), progress=False)
    assert (state.step, reason) == (1, "max_steps")
    return {n: before[n] - p.detach() for n, p in model.named_parameters()}


def pairs(seed: int, rows: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, VOCAB, (int(torch.randint(1, 12, (), generator=g)),), generator=g).tolist()
            for _ in range(2 * rows)]


def test_accumulated_micro_batches_give_the_update_of_one_big_batch(tmp_path):
    model = tiny_model(0)
    seqs = pairs(1, 10)
    src, tgt = seqs[:10], seqs[10:]
    small = [collate(src, tgt, range(0, 3)), collate(src, tgt, range(3, 10))]  # unequal token counts
    big = collate(src, tgt, range(10))
    accumulated = one_sgd_step(model, small, tmp_path, accum=2)
    whole = one_sgd_step(model, [big], tmp_path, accum=1)

    # Both equal the gradient of the mean loss per target token over all ten pairs.
    reference = copy.deepcopy(model)
    loss, n_tokens = reference.loss(big)
    (loss / n_tokens).backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(accumulated[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)
        torch.testing.assert_close(whole[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_label_smoothing_in_training_but_not_in_validation():
    model, batch = tiny_model(0), random_batch(3)
    logits, _ = model(batch.src, shift_right(batch.tgt, model.bos), batch.src_lengths)
    flat_logits, flat_tgt = logits.flatten(0, 1), batch.tgt.flatten()
    smoothed = F.cross_entropy(flat_logits, flat_tgt, ignore_index=model.pad, label_smoothing=0.1, reduction="sum")
    plain = F.cross_entropy(flat_logits, flat_tgt, ignore_index=model.pad, reduction="sum")
    model.train()
    torch.testing.assert_close(model.loss(batch)[0], smoothed)
    model.eval()
    torch.testing.assert_close(model.loss(batch)[0], plain)


def test_the_loop_trains_in_train_mode_and_validates_in_eval_mode(tmp_path):
    model, modes = tiny_model(0), []
    loss = model.loss

    def spy_loss(batch):
        modes.append("train" if model.training else "eval")
        return loss(batch)

    def validate():
        modes.append("validate in train mode" if model.training else "validate")
        return {"loss": 1.0}
    model.loss = spy_loss
    c = TrainConfig(max_steps=3, valid_every=2, warmup=1)
    fit(model, make_optimizer(model, c), Stream([random_batch(0)]), validate, lambda m: None, tmp_path, c, Dist(),
        TrainerState(), progress=False)
    assert modes == ["train", "train", "validate", "train", "validate"]


def test_runs_with_and_without_smoothing_differ_in_training_loss_only(tmp_path):
    """End to end: the config's label smoothing reaches the training loss and not the validation loss."""
    data = write_corpus(tmp_path / "data", n_train=60, n_valid=20)
    losses = {}
    for smoothing in (0.0, 0.5):
        # lr so small that step 1 leaves the weights as they were: both runs validate the same model
        config = write_config(tmp_path / f"ls{smoothing}.yaml", data, label_smoothing=smoothing, lr=1e-12,
                              max_steps=1, valid_every=1, log_every=1)
        out = tmp_path / f"run{smoothing}"
        train_here(config, out)
        losses[smoothing] = records(out, "loss")[0]["loss"], records(out, "valid_loss")[0]["valid_loss"]
    (train0, valid0), (train5, valid5) = losses[0.0], losses[0.5]
    assert abs(train5 - train0) > 0.01
    assert valid5 == pytest.approx(valid0, rel=1e-7)
