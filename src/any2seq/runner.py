"""``any2seq train``: config -> run directory -> the task's tokenizers, data and model -> the training loop."""
from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch

from .config import Config
from .errors import UserError
from .fileio import atomic_write, copy_dir, writable_dir, write_error
from .hf.encoder_folder import load_pretrained_encoder, with_hf_encoder
from .hf.source_tokenizer import FOLDER as HF_TOKENIZER
from .hf.tokenizer import FILES as MARIAN_FILES
from .modeldir import config_changes, read_config, write_card, write_config
from .precision import TRAIN_ROWS, Choice, choose, linear_shapes
from .seq2seq import check_positions, count_parameters
from .task_metrics import selected_metric
from .tasks import get_task
from .train.checkpoint import (
    checkpoint_dirs,
    clean_partial,
    load_checkpoint,
    load_weights,
    read_trainer,
    save_tensors,
    unique_tensors,
)
from .train.distributed import Dist, all_gather, barrier, init_distributed, main_first, shutdown
from .train.lock import RunLock
from .train.loop import TrainerState, fit
from .train.optim import make_optimizer


def prepare_run_dir(out: Path, cfg: Config, resume: bool) -> None:
    """Create or check the run directory; never overwrite a run that is there already.

    A directory counts as a run once it holds a checkpoint or a model card: what a run that
    failed before its first checkpoint left behind is simply written over by the next attempt.
    """
    has_run = (out / "model.json").is_file() or bool(checkpoint_dirs(out))
    if resume:
        if not checkpoint_dirs(out):
            raise UserError(f"{out}: nothing to resume (no checkpoints); drop --resume to start a new run")
        changed = config_changes(read_config(out), cfg)
        if changed:
            raise UserError(f"{out / 'config.yaml'}: --resume with a different config ({', '.join(changed[:5])}); "
                            "resume with the same config or train into a new --out")
        return
    if has_run:
        raise UserError(f"{out}: already holds a run; continue it with --resume or choose another --out")
    writable_dir(out, f"--out {out}")


def train(cfg: Config, out: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train a model as ``cfg`` describes into ``out``; returns the final trainer state as a dict."""
    out = Path(out)
    # an hf encoder's config.json goes into the run's config (a resumed run's saved one, once its folder is gone)
    cfg = with_hf_encoder(cfg, _saved_encoder(cfg, out, resume))
    dist = init_distributed()
    try:
        with ExitStack() as held:  # the run directory's lock, held until training ends
            return _train(cfg, out, resume, progress, dist, held)
    finally:
        shutdown(dist)


def _saved_encoder(cfg: Config, out: Path, resume: bool):
    """A resumed hf-encoder run's saved encoder config: its config.json stands in for an HF folder
    that is gone since (the run keeps everything else it needs: tokenizer, checkpoints)."""
    if resume and cfg.model.encoder.kind == "hf" and (out / "config.yaml").is_file():
        return read_config(out).model.encoder
    return None


def _train(cfg: Config, out: Path, resume: bool, progress: bool, dist: Dist, held: ExitStack) -> dict:
    threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // dist.world)
    torch.set_num_threads(threads)
    task = get_task(cfg.task)
    if dist.main:
        task.check_data(cfg)  # before anything is written, so a data mistake leaves no trace
        # a resumed run's checkpoint holds what init gave it: the init run may be gone by then
        if cfg.train.init and not resume and not (Path(cfg.train.init) / "model.safetensors").is_file():
            raise UserError(f"train.init: {cfg.train.init}: not a model directory (no model.safetensors)")
        if not resume:
            writable_dir(out, f"--out {out}")  # the lock file lives in it
        # Rank 0 locks the run before it reads or writes it: a second train into it stops here.
        if out.is_dir():
            held.enter_context(RunLock(out))
        prepare_run_dir(out, cfg, resume)
        if resume:  # a corrupt trainer.json is named before config.yaml is rewritten
            trainer_state(read_trainer(checkpoint_dirs(out)[-1]), checkpoint_dirs(out)[-1] / "trainer.json")
        clean_partial(out)
        write_config(out, cfg)
    barrier(dist)
    inherited = dist.main and not resume and inherit_tokenizers(cfg, out)
    toks = main_first(dist, lambda: task.prepare(cfg, out, reuse=resume or inherited or not dist.main))
    torch.manual_seed(cfg.train.seed)
    model = task.build_model(cfg, toks, cfg.train.label_smoothing)
    model.to(dist.device)
    optimizer = make_optimizer(model, cfg.train)
    state = TrainerState()
    if cfg.train.init and not resume:  # a resumed run's checkpoint already holds what init gave it
        load_weights(model, Path(cfg.train.init) / "model.safetensors", key="train.init")
    elif not resume:
        load_pretrained_encoder(model, cfg)  # an hf encoder starts from its folder's weights
    if resume:
        last = checkpoint_dirs(out)[-1]
        trainer = load_checkpoint(last, model, optimizer, dist.rank, dist.device)
        state = trainer_state(trainer, last / "trainer.json")
        if dist.main:
            rewind_log(out, state.step)
    batches = main_first(dist, lambda: task.training_batches(cfg, toks, state.position))  # one cache writer
    check_positions(cfg, *batches.token_lengths())
    validate = task.make_validate(model, toks, cfg, dist.device, cfg.train.valid_bleu) if dist.main else None
    n_params = count_parameters(model)
    card = {"task": cfg.task, "input": task.input_kind, "output": task.output_kind,
            "encoder": cfg.model.encoder.kind, "decoder": cfg.model.decoder.kind, "parameters": n_params,
            **task.card(cfg, batches)}

    def on_best(metrics: dict) -> None:
        save_tensors(out / "model.safetensors", unique_tensors(model))
        write_card(out, {**card, "step": state.step, "valid": metrics})

    if dist.main:
        print(f"any2seq: {cfg.task}, {n_params / 1e6:.1f}M parameters, {len(batches.kept)} training examples, "
              f"{threads} threads x {dist.world} process(es) -> {out}", file=sys.stderr)
    choice = _precision(cfg, model, dist)
    card["precision"] = choice.record()
    if dist.main:
        print(choice.line("training"), file=sys.stderr)
        try:  # a resumed run may choose anew: each start is recorded
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps({"step": state.step, "precision": choice.record()}) + "\n")
        except OSError as e:  # a full disk: one line naming the file, as the loop's own records
            raise write_error(out / "metrics.jsonl", e) from None
    metric = selected_metric(cfg.task, cfg.train.metric, cfg.train.valid_bleu)
    train_cfg = replace(cfg.train, precision=choice.precision, metric=metric)
    d_model = getattr(cfg.model.decoder, "d_model", 512)  # the noam schedule's scale
    state, reason = fit(model, optimizer, batches, validate, on_best, out, train_cfg, dist, state, d_model, progress)
    if reason == "interrupted":
        raise UserError(f"{out}: interrupted; saved step {state.step}, continue with --resume")
    if dist.main and state.best is None:  # every validation was NaN (or infinite): there is no model to name
        raise UserError(f"{out}: no model: every validation {metric} was NaN or infinite up to step "
                        f"{state.step} (training diverged; a lower train.lr may help)")
    if dist.main:
        _finish(out)
        print(f"any2seq: stopped at step {state.step} ({reason}); best valid {metric} "
              f"{state.best} at step {state.best_step}; model in {out}", file=sys.stderr)
    return {**state.__dict__, "reason": reason}


def _precision(cfg: Config, model, dist: Dist) -> Choice:
    """``train.precision`` resolved for this model on this machine (precision.py); under DDP every
    rank trains in rank 0's choice (the others read its cached verdict, or are told it)."""
    rows = min(cfg.train.batch_tokens, TRAIN_ROWS)
    choice = main_first(dist, lambda: choose(cfg.train.precision, linear_shapes(model), rows, dist.device, train=True))
    if dist.world > 1:
        first = all_gather(torch.tensor([choice.precision == "bf16"], device=dist.device), dist)[0]
        if bool(first.item()) != (choice.precision == "bf16"):
            choice = Choice("bf16" if bool(first.item()) else "fp32", "rank 0's choice")
    return choice


# TrainerState's fields as trainer.json holds them; anything else there is a corrupt file.
STATE_TYPES = {"step": int, "position": list, "best": (int, float, type(None)), "best_step": int,
               "bad_validations": int, "elapsed_s": (int, float), "tokens": int}


def trainer_state(trainer: dict, path: Path) -> TrainerState:
    """The TrainerState a checkpoint's trainer.json holds; a UserError naming the file if it is corrupt."""
    for key, kind in STATE_TYPES.items():
        value = trainer.get(key, getattr(TrainerState(), key))
        if isinstance(value, bool) or not isinstance(value, kind) or (isinstance(value, int) and value < 0):
            raise UserError(f"{path}: {key}: not a valid value ({str(value)[:40]!r}); the checkpoint is corrupt")
    position = trainer.get("position", [0, 0])
    if len(position) != 2 or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in position):
        raise UserError(f"{path}: position: expected [epoch, batch], got {str(position)[:40]!r}; "
                        "the checkpoint is corrupt")
    return TrainerState(**{k: v for k, v in trainer.items() if k in STATE_TYPES})


def inherit_tokenizers(cfg: Config, out: Path) -> bool:
    """With ``train.init``, copy the init run's sentencepiece models (or an imported Marian vocabulary's
    files) and its Hugging Face source tokenizer (``hf_tokenizer/``) into ``out``, so every token id
    means what it meant to the weights and the new run needs neither the init run nor the HF folder;
    False when it has none (frame tasks) or there is no init."""
    if not cfg.train.init:
        return False
    init = Path(cfg.train.init)
    models = sorted(init.glob("spm*.model")) + [init / name for name in MARIAN_FILES if (init / name).is_file()]
    for model in models:
        atomic_write(out / model.name, model.read_bytes())
    hf = (init / HF_TOKENIZER).is_dir()
    if hf:
        copy_dir(init / HF_TOKENIZER, out / HF_TOKENIZER)
    return bool(models) or hf


def rewind_log(out: Path, step: int) -> None:
    """Keep only metrics.jsonl's records up to ``step``, the checkpoint a resumed run starts from:
    a killed run may have logged later steps (they are trained again) or died half-way through a line."""
    path = out / "metrics.jsonl"
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line the kill cut short
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(line + "\n")
    atomic_write(path, "".join(kept))


def _finish(out: Path) -> None:
    """Plot the training curves (matplotlib is optional at run time)."""
    try:
        from .plots import plot_curves
    except ImportError:
        return
    plot_curves(out)


__all__ = ["train", "prepare_run_dir"]
