"""What every config dataclass's ``check()`` uses: the validation error carrying the key, and the bounds.

Kept apart from ``config.py`` (YAML loading, the sections) so that a component's module can declare
its own config beside its code without importing the loader.
"""
from __future__ import annotations

# Bounds on sizes, far above any model this toolkit trains (GPT-3: width 12288, 96 layers, 96 heads),
# so a typo fails at load instead of a division by zero, a huge allocation or a build that never ends.
MAX_WIDTH, MAX_LAYERS, MAX_HEADS = 65536, 1000, 1024


class Invalid(Exception):
    """A bad config value; ``key`` is its path inside the section, which the loader prefixes."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise Invalid(key, message)


def sizes(obj, keys: str, low: int = 1, high: int = MAX_WIDTH) -> None:
    for key in keys.split():
        value = getattr(obj, key)
        require(low <= value <= high, key, f"must be in {low}..{high}, got {value}")


def attention_sizes(obj, min_layers: int = 1) -> None:
    """d_model, heads (dividing d_model), ff, layers and dropout of a Transformer stack."""
    sizes(obj, "d_model ff")
    sizes(obj, "heads", high=MAX_HEADS)
    sizes(obj, "layers", low=min_layers, high=MAX_LAYERS)
    require(obj.d_model % obj.heads == 0, "d_model", f"{obj.d_model} is not a multiple of heads={obj.heads}")
    dropout(obj)


def dropout(obj) -> None:
    require(0.0 <= obj.dropout < 1.0, "dropout", f"must be in [0, 1), got {obj.dropout}")
