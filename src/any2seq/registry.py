"""The component registry: every encoder, decoder, task and metric, looked up by name.

Each component declares itself in its own module (its config dataclass, its builder, its facts);
``components.py`` lists the built-in ones, one line each, and everything that needs the names (config
parsing, the CLI, metric directions, plots, tests, docs) asks this module. A component from outside the
package registers the same way: ``register_encoder(MyConfig, build)`` (or ``register_decoder``,
``register_task``, ``register_metric``) before loading a config, or an entry point in the
``any2seq.components`` group naming its declaration (an ``EncoderPart`` etc., or a list of them).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Callable, Optional

ENTRY_POINT_GROUP = "any2seq.components"


@dataclass(frozen=True)
class Sizes:
    """What a builder learns from the data and the other parts: vocabularies, the encoder's output
    width (decoders), and a frame's (C, H, W) (frame decoders)."""
    src_vocab: int = 0
    tgt_vocab: int = 0
    memory_dim: int = 0
    frame_shape: Optional[tuple[int, int, int]] = None


@dataclass(frozen=True)
class EncoderPart:
    """An encoder: its frozen config dataclass, whose ``kind`` Literal names it (one or more names),
    and ``build(config, sizes) -> Encoder``."""
    config: type
    build: Callable[[Any, Sizes], Any]

    @property
    def names(self) -> tuple[str, ...]:
        return kind_names(self.config)


@dataclass(frozen=True)
class DecoderPart:
    """A decoder, as an encoder; ``frames``: it outputs frames (a regression model), not tokens."""
    config: type
    build: Callable[[Any, Sizes], Any]
    frames: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return kind_names(self.config)


@dataclass(frozen=True)
class TaskPart:
    """A task: its ``data`` config section, the metrics its validation reports (the first picks the
    best checkpoint unless ``train.metric`` says otherwise; ``loss`` is always among them), and
    ``make() -> Task``."""
    name: str
    data_config: type
    metrics: tuple[str, ...]
    make: Callable[[], Any]


@dataclass(frozen=True)
class MetricPart:
    name: str
    higher_is_better: bool


Part = typing.Union[EncoderPart, DecoderPart, TaskPart, MetricPart]
SLOTS = {EncoderPart: "encoder", DecoderPart: "decoder", TaskPart: "task", MetricPart: "metric"}


def kind_names(config: type) -> tuple[str, ...]:
    """The names a config class answers to: the values of its ``kind: Literal[...]`` field."""
    hints = typing.get_type_hints(config)
    if typing.get_origin(hints.get("kind")) is not typing.Literal:
        raise TypeError(f"{config.__name__} needs a `kind: Literal[...]` field naming its component")
    return typing.get_args(hints["kind"])


class UnknownName(KeyError):
    """A name no component of its slot answers to; the message lists the valid ones."""

    def __init__(self, slot: str, name, valid: list[str]):
        super().__init__(f"{name!r} is not one of {', '.join(valid)}")
        self.slot, self.name, self.valid = slot, name, valid

    def __str__(self) -> str:
        return self.args[0]


_table: dict[str, dict[str, Part]] = {slot: {} for slot in SLOTS.values()}
_loaded = False


def register(part: Part) -> Part:
    """Add a component; a name already taken in its slot is an error (no silent replacement)."""
    slot = SLOTS.get(type(part))
    if slot is None:
        raise TypeError(f"not a component declaration: {part!r}")
    names = part.names if slot in ("encoder", "decoder") else (part.name,)
    for name in names:
        if name in _table[slot] and _table[slot][name] != part:
            raise ValueError(f"the {slot} name {name!r} is already registered")
    for name in names:
        _table[slot][name] = part
    return part


def register_encoder(config: type, build: Callable[[Any, Sizes], Any]) -> EncoderPart:
    """A user's own encoder: ``kind: <a name in config's kind Literal>`` then selects it in a config."""
    return register(EncoderPart(config, build))


def register_decoder(config: type, build: Callable[[Any, Sizes], Any], frames: bool = False) -> DecoderPart:
    return register(DecoderPart(config, build, frames))


def register_task(name: str, data_config: type, metrics: tuple[str, ...], make: Callable[[], Any]) -> TaskPart:
    """A user's own task: ``task: <name>`` then selects it, and its ``data:`` section is read as ``data_config``."""
    return register(TaskPart(name, data_config, tuple(metrics), make))


def register_metric(name: str, higher_is_better: bool) -> MetricPart:
    """A metric a task reports: its name and which way is better (for picking the best checkpoint)."""
    return register(MetricPart(name, higher_is_better))


def _load() -> None:
    """The built-in table, then installed plugins' entry points, then what was registered by a call
    before this first use; once (lazily, because tasks import the config loader that asks this module).
    Built-ins come first whenever a user's part was registered, so a slot's default (its first entry)
    stays the built-in one."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from .components import COMPONENTS

    early = [part for table in _table.values() for part in table.values()]
    for table in _table.values():
        table.clear()
    for spec in COMPONENTS:
        register(resolve(spec))
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()
        for part in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            register(part)
    for part in early:
        register(part)


def resolve(spec: str) -> Part:
    """``"encoders.text:TRANSFORMER"`` -> the part that module declares under that name."""
    module, _, name = spec.partition(":")
    return getattr(import_module(f"{__package__}.{module}"), name)


def parts(slot: str) -> dict[str, Part]:
    """Name -> declaration for one slot (encoder, decoder, task, metric), in table order."""
    _load()
    return dict(_table[slot])


def names(slot: str) -> list[str]:
    return list(parts(slot))


def lookup(slot: str, name) -> Part:
    """The declaration ``name`` selects; ``UnknownName`` (listing the valid names) if none."""
    table = parts(slot)
    if not isinstance(name, str) or name not in table:
        raise UnknownName(slot, name, list(table))
    return table[name]


def encoder(name: str) -> EncoderPart:
    return lookup("encoder", name)


def decoder(name: str) -> DecoderPart:
    return lookup("decoder", name)


def task(name: str) -> TaskPart:
    return lookup("task", name)


def higher_is_better(metric: str) -> bool:
    return lookup("metric", metric).higher_is_better
