"""When training stops: early stopping, the wall-clock budget, and a run already at its limits."""
import json

from any2seq.config import TrainConfig
from any2seq.train.checkpoint import checkpoint_dirs
from any2seq.train.distributed import Dist
from any2seq.train.loop import TrainerState, fit
from any2seq.train.optim import make_optimizer

from .helpers import Stream, checkpoint, random_batch, records, tiny_model, train_here, write_config, write_corpus


def test_early_stopping_when_the_metric_cannot_improve(tmp_path):
    model, best_calls = tiny_model(0), []
    c = TrainConfig(max_steps=100, valid_every=2, patience=1, metric="loss", warmup=1)
    state, reason = fit(model, make_optimizer(model, c), Stream([random_batch(0), random_batch(1)]),
                        lambda: {"loss": 2.0}, best_calls.append, tmp_path, c, Dist(), TrainerState(), progress=False)
    # The first validation sets the best; the second fails to beat it, and patience 1 is spent.
    assert (reason, state.step) == ("early_stopping", 4)
    assert (state.best, state.best_step, state.bad_validations) == (2.0, 2, 1)
    assert best_calls == [{"loss": 2.0}]
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step_00000002", "step_00000004"]


def test_patience_counts_validations_without_improvement_only(tmp_path):
    model, values = tiny_model(0), iter([3.0, 2.0, 2.5, 1.0, 1.5, 1.2])
    c = TrainConfig(max_steps=100, valid_every=1, patience=2, metric="loss", warmup=1)
    state, reason = fit(model, make_optimizer(model, c), Stream([random_batch(0)]), lambda: {"loss": next(values)},
                        lambda m: None, tmp_path, c, Dist(), TrainerState(), progress=False)
    assert (reason, state.step, state.best, state.best_step) == ("early_stopping", 6, 1.0, 4)


def test_a_tiny_time_budget_stops_after_one_step_and_keeps_the_best_model(tmp_path):
    config = write_config(tmp_path / "tiny.yaml", write_corpus(tmp_path / "data", n_train=60, n_valid=20),
                          max_minutes=1e-6, max_steps=1000, valid_every=1000)
    out = tmp_path / "run"
    state = train_here(config, out)
    assert (state["reason"], state["step"]) == ("max_minutes", 1)
    assert (out / "model.safetensors").is_file()
    card = json.loads((out / "model.json").read_text())
    assert card["step"] == 1 and "loss" in card["valid"]
    assert checkpoint_dirs(out) == [checkpoint(out, 1)]
    assert [r["step"] for r in records(out, "valid_loss")] == [1]

    # Resumed with the budget already spent, it stops at once: no step past the limit, no new checkpoint.
    state = train_here(config, out, resume=True)
    assert (state["reason"], state["step"]) == ("max_minutes", 1)
    assert checkpoint_dirs(out) == [checkpoint(out, 1)]
    # ... and with a larger budget it goes on from there.
    state = train_here(config, out, resume=True, overrides=("train.max_minutes=0", "train.max_steps=3"))
    assert (state["reason"], state["step"]) == ("max_steps", 3)
