"""any2seq: encoder-decoder models for any input and any output, on PyTorch."""
__version__ = "0.1.0"

from .interfaces import Decoder, Encoder, EncoderDecoder, Memory  # noqa: E402

__all__ = ["Encoder", "Decoder", "EncoderDecoder", "Memory", "load", "__version__"]


def load(path, device="cpu"):
    """Load a trained model directory: ``any2seq.load(DIR).translate(["Ein Hund läuft."], beam=5)``."""
    from .api import load as _load

    return _load(path, device)
