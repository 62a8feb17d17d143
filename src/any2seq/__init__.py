"""any2seq: encoder-decoder models for any input and any output, on PyTorch."""
__version__ = "0.1.0"

__all__ = ["Encoder", "Decoder", "EncoderDecoder", "Memory", "load", "__version__"]

from . import moved as _moved

_moved.install()  # any2seq.decoding and any2seq.models: renamed, still importable


def __getattr__(name):
    # The interfaces (and with them torch) load on first use, so that the command line answers
    # a mistake in a config or a flag without a second of import time.
    if name in ("Encoder", "Decoder", "EncoderDecoder", "Memory"):
        from . import interfaces

        return getattr(interfaces, name)
    raise AttributeError(f"module 'any2seq' has no attribute {name!r}")


def load(path, device="cpu", dtype="auto"):
    """Load a trained model directory: ``any2seq.load(DIR).translate(["Ein Hund läuft."], beam=5)``;
    ``dtype="auto"`` decodes in float32 or bf16, whichever this machine runs the model's products
    faster (``"fp32"`` or ``"bf16"`` force one)."""
    from .api import load as _load

    return _load(path, device, dtype)
