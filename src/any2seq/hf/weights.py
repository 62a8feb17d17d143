"""Reading a Hugging Face checkpoint without running it, and the two index maps between Marian's
layout and any2seq's: the model width (Marian's sin|cos position halves against any2seq's
interleaved sin, cos table) and the vocabulary (special ids 0-3)."""
from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from ..errors import UserError
from ..fileio import writable_dir
from ..train.checkpoint import load_tensors


def read_checkpoint(folder: Path) -> dict[str, Tensor]:
    """``model.safetensors``, or ``pytorch_model.bin`` through torch's loader with ``weights_only=True``
    (which refuses any pickled object other than tensors and plain containers, so a payload in
    the file never runs); half-precision tensors come back as float32."""
    st, bin_ = folder / "model.safetensors", folder / "pytorch_model.bin"
    if st.is_file():
        tensors = load_tensors(st)
    elif bin_.is_file():
        try:
            with warnings.catch_warnings():  # torch warns about pickle protocols: the refusal below says enough
                warnings.simplefilter("ignore")
                tensors = torch.load(bin_, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 -- pickle's UnpicklingError (a refused global), a broken zip, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise UserError(f"{bin_}: refused: not a plain tensor checkpoint ({first[:160]})") from None
        if not isinstance(tensors, dict) or not all(isinstance(t, Tensor) for t in tensors.values()):
            raise UserError(f"{bin_}: refused: not a mapping of names to tensors")
    elif any(folder.glob("*.index.json")):
        raise UserError(f"{folder}: sharded checkpoints are not supported; merge them into model.safetensors")
    else:
        raise UserError(f"{folder}: no model.safetensors or pytorch_model.bin")
    return {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}


def width_order(d_model: int) -> Tensor:
    """``order[any2seq column] = Marian column``: Marian's position table has sin(p w_k) in column
    k and cos(p w_k) in column D/2 + k, any2seq's in columns 2k and 2k + 1. Permuting every
    residual-stream vector this way turns one model into the other exactly."""
    half = torch.arange(d_model // 2)
    return torch.stack([half, half + d_model // 2], dim=1).flatten()


def inverse(order: Tensor) -> Tensor:
    out = torch.empty_like(order)
    out[order] = torch.arange(order.numel())
    return out


@contextmanager
def new_directory(out: Path):
    """Yield a temporary folder beside ``out`` that becomes ``out`` when the block succeeds; a
    failure leaves nothing behind. ``out`` must not exist, or be an empty directory."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not an empty directory; choose another")
    writable_dir(out.parent if str(out.parent) else Path("."), str(out))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
