"""Checkpoints: weights and optimiser state in safetensors, the rest in JSON; every write atomic.

A checkpoint is a directory ``checkpoints/step_00001234/`` holding ``model.safetensors``,
``optimizer.safetensors`` (Adam's moments and step, and every rank's RNG states) and
``trainer.json``. It is written under a temporary name and renamed into place, and older ones are
removed only afterwards, so a crash at any moment leaves the last good checkpoint intact. Nothing
is ever unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..errors import UserError, clip
from ..fileio import MiB, atomic_write, fsync_dir, read_regular

FORMAT_VERSION = 1


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


MAX_JSON_BYTES = 64 * MiB  # a model card or trainer state: a few KB
MAX_WEIGHTS_BYTES = 1 << 40  # a bound for a regular file; what matters is refusing FIFOs and devices


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; anything else (a list, invalid or too deeply nested JSON) is a UserError."""
    data = read_regular(path, MAX_JSON_BYTES, missing="missing")
    try:
        obj = json.loads(data.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except RecursionError:
        raise UserError(f"{path}: not readable JSON (nested too deeply)") from None
    except (UnicodeDecodeError, ValueError) as e:  # ValueError: an integer of more than 4,300 digits
        raise UserError(f"{path}: not readable JSON ({clip(str(e) or type(e).__name__, 80)})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object, got a {type(obj).__name__}")
    return obj


def unique_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without the aliases that weight tying creates (safetensors refuses them)."""
    seen, out = set(), {}
    for name, t in module.state_dict().items():
        key = (t.data_ptr(), t.shape, t.stride())
        if key not in seen:
            seen.add(key)
            out[name] = t.detach().contiguous()
    return out


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    atomic_write(path, st_save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; anything else (a pickle, a truncated file) is refused, never loaded."""
    path = Path(path)
    data = read_regular(path, MAX_WEIGHTS_BYTES, missing="missing")
    try:
        return st_load(data)  # parses a JSON header and copies bytes: never runs code
    except (SafetensorError, ValueError, RuntimeError) as e:
        if data[:1] == b"\x80" or data[:2] == b"PK":  # pickle protocol 2+, or torch.save's zip of pickles
            raise UserError(f"{path}: this is a pickle/zip file, not safetensors; any2seq never unpickles files") \
                from None
        raise UserError(f"{path}: not a valid safetensors file (truncated or corrupt: {e})") from None


def load_weights(model: nn.Module, path: Path, key: str | None = None) -> None:
    """Load a safetensors file into ``model``; a UserError (prefixed by the config ``key`` that named
    the file, if any) when the names or shapes do not fit."""
    where = f"{key}: {path}" if key else str(path)
    if key and not Path(path).is_file():
        raise UserError(f"{where}: missing (give a model directory that holds model.safetensors)")
    tensors = load_tensors(path)
    expected = unique_tensors(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(model.state_dict()))
    if missing or unexpected:
        raise UserError(f"{where}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, t in tensors.items():
        if t.shape != expected.get(name, t).shape:
            raise UserError(f"{where}: {name} has shape {tuple(t.shape)}, the model wants {tuple(expected[name].shape)}")
        if t.is_floating_point() and not bool(t.isfinite().all()):  # NaN weights decode nothing (all scores NaN)
            raise UserError(f"{where}: {name} holds NaN or infinite values (did its training diverge?)")
    model.load_state_dict(tensors, strict=False)


# --- optimiser state ----------------------------------------------------------------------------

def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = optimizer.state_dict()
    tensors = {f"{i}.{k}": v for i, s in sd["state"].items() for k, v in s.items() if torch.is_tensor(v)}
    return tensors, sd["param_groups"]


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict] = {}
    # JSON has no tuples: give Adam its betas back as torch wrote them, so the state dict round-trips.
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()} for g in groups]
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# --- random number generators --------------------------------------------------------------------

def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's generator states: dropout draws from them, so a resumed run needs them back."""
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng(tensors: dict[str, torch.Tensor], rank: int, device: torch.device) -> None:
    """Set this rank's generators from ``rng.{rank}.*`` (rank 0's when the run had fewer processes)."""
    prefix = f"rng.{rank}." if f"rng.{rank}.torch" in tensors else "rng.0."
    torch.set_rng_state(tensors[prefix + "torch"])
    if device.type == "cuda" and prefix + "cuda" in tensors:
        torch.cuda.set_rng_state(tensors[prefix + "cuda"], device)


# --- checkpoint directories ---------------------------------------------------------------------

def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a directory counts once it has been renamed into place)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and not p.name.endswith(".tmp"))


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, optimizer, trainer: dict, keep_last: int,
                    rng: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``checkpoints/step_{step}`` atomically, then drop all but the newest ``keep_last``.

    ``rng`` holds every rank's generator states as ``rng.{rank}.{torch,cuda}`` (default: this process's).
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f"step_{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(tmp / "model.safetensors", unique_tensors(model))
    opt_tensors, groups = optimizer_tensors(optimizer)
    if rng is None:
        rng = {f"rng.0.{k}": v for k, v in rng_states(torch.device("cpu")).items()}
    save_tensors(tmp / "optimizer.safetensors", {**opt_tensors, **rng})
    write_json(tmp / "trainer.json", {**trainer, "format_version": FORMAT_VERSION, "param_groups": groups})
    replaced = root / f"step_{step:08d}.old.tmp"
    if final.exists():  # the same step saved twice (not in a normal run): move it aside, delete it once replaced
        os.replace(final, replaced)
    os.replace(tmp, final)
    fsync_dir(root)
    shutil.rmtree(replaced, ignore_errors=True)
    for old in checkpoint_dirs(run_dir)[:-keep_last]:
        _remove(old)
    return final


def _remove(ckpt: Path) -> None:
    """Rename to a ``.tmp`` name, then delete: a crash half-way through never leaves a
    half-deleted directory that :func:`checkpoint_dirs` would take for a complete checkpoint."""
    doomed = ckpt.with_name(ckpt.name + ".del.tmp")
    os.replace(ckpt, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def read_trainer(ckpt: Path) -> dict:
    """A checkpoint's trainer.json, checked to be one this version wrote (a UserError naming it if not)."""
    path = Path(ckpt) / "trainer.json"
    trainer = read_json(path)
    if not isinstance(trainer, dict) or not isinstance(trainer.get("param_groups"), list):
        raise UserError(f"{path}: not a trainer state (a JSON object with param_groups); the checkpoint is corrupt")
    if trainer.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{ckpt}: checkpoint format {str(trainer.get('format_version'))[:20]} is not {FORMAT_VERSION}")
    return trainer


def load_checkpoint(ckpt: Path, model: nn.Module, optimizer, rank: int = 0,
                    device: torch.device = torch.device("cpu")) -> dict:
    """Restore model, optimiser and this rank's RNG from ``ckpt``; returns the trainer state."""
    trainer, path = read_trainer(ckpt), ckpt / "trainer.json"
    load_weights(model, ckpt / "model.safetensors")
    tensors = load_tensors(ckpt / "optimizer.safetensors")
    if "rng.0.torch" not in tensors:
        raise UserError(f"{ckpt / 'optimizer.safetensors'}: no RNG state, so the run cannot continue exactly")
    restore_rng(tensors, rank, device)
    tensors = {k: v for k, v in tensors.items() if not k.startswith("rng.")}
    try:
        restore_optimizer(optimizer, tensors, trainer.pop("param_groups"))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:  # torch's own checks, or bad keys
        raise UserError(f"{path}: its optimizer state does not fit this model ({str(e)[:80]}); "
                        "the checkpoint is corrupt") from None
    return trainer


def clean_partial(run_dir: Path) -> None:
    """Remove what a crash may have left half-written (temporary files and directories)."""
    for p in list((Path(run_dir) / "checkpoints").glob("*.tmp")) + list(Path(run_dir).glob(".*.tmp")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def average_checkpoints(ckpts: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' weights (Vaswani et al., 2017, averaged the last 5-20)."""
    total: dict[str, torch.Tensor] = {}
    for ckpt in ckpts:
        tensors = load_tensors(Path(ckpt) / "model.safetensors")
        if total and tensors.keys() != total.keys():
            raise UserError(f"{ckpt}: holds other weights than {ckpts[0]}; cannot average them")
        for name, t in tensors.items():
            total[name] = total[name] + t.double() if name in total else t.double()
    return {name: (t / len(ckpts)).to(torch.float32) for name, t in total.items()}
