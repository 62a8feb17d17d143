"""Int8 weights for decoding on a CPU (``--dtype int8``, opt-in): every linear layer multiplies by
int8 weights and int8 activations quantized per call (PyTorch's dynamic quantization: fbgemm on
x86, qnnpack on Arm), the rest of the model stays float32.

Opt-in, never what ``auto`` picks: the outputs differ from float32's (the BLEU measured on the demo
model is in benchmarks/README.md, "int8 weights"), and whether it is faster depends on the CPU, as
every precision does. PyTorch marks its eager quantization API deprecated in favour of torchao;
where a torch build lacks it, ``quantize_linears`` says so in one line.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import UserError


def quantized_engine() -> str:
    """The quantized CPU engine this torch build offers (fbgemm, x86, onednn or qnnpack), or a one-line error."""
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        raise UserError("--dtype int8: this PyTorch build has no quantized CPU engine (fbgemm, qnnpack)")
    current = torch.backends.quantized.engine
    return current if current in engines else engines[0]


def quantize_linears(model: nn.Module) -> int:
    """Replace every ``nn.Linear`` of ``model`` (on the CPU, float32, for inference) by its dynamic
    int8 counterpart, in place; the number replaced. Weights shared with other modules (a tied
    output projection read as ``embed.weight``) stay float32 where those modules read them."""
    torch.backends.quantized.engine = quantized_engine()
    try:
        from torch.ao.nn.quantized.dynamic import Linear as Int8Linear
        from torch.ao.quantization import quantize_dynamic
    except ImportError as e:  # a future torch without the eager API
        raise UserError(f"--dtype int8: this PyTorch ({torch.__version__}) has no dynamic quantization ({e})") from None
    with warnings.catch_warnings():  # the deprecation notice, once per linear layer: not the user's to act on
        warnings.simplefilter("ignore")
        quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return sum(isinstance(m, Int8Linear) for m in model.modules())
