"""The registry: built-in kinds resolve from the one table, an unknown name fails in one line with the
valid ones, and a component from outside the package (a call or an entry point) works like a built-in."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest
import torch
from torch import nn

from any2seq import registry
from any2seq.components import COMPONENTS
from any2seq.config import config_from_dict
from any2seq.errors import UserError
from any2seq.interfaces import Encoder, Memory, lengths_to_mask
from any2seq.seq2seq import build_model

V = 20


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test are forgotten after it."""
    registry.parts("encoder")  # the built-ins, loaded before the copy
    monkeypatch.setattr(registry, "_table", {slot: dict(table) for slot, table in registry._table.items()})


@dataclass(frozen=True)
class ConvConfig:
    kind: Literal["test_conv"] = "test_conv"
    width: int = 16


class ConvEncoder(Encoder):
    def __init__(self, vocab: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.conv = nn.Conv1d(width, width, kernel_size=3, padding=1)
        self.out_dim = width

    def forward(self, src, src_lengths):
        x = torch.relu(self.conv(self.embed(src).transpose(1, 2))).transpose(1, 2)  # (B, S, D)
        return Memory(x, lengths_to_mask(src_lengths, src.size(1)))


def build_conv(cfg: ConvConfig, dims: registry.Sizes) -> ConvEncoder:
    return ConvEncoder(dims.src_vocab, cfg.width)


def test_every_built_in_kind_resolves_to_its_declaration():
    for part in map(registry.resolve, COMPONENTS):
        slot = registry.SLOTS[type(part)]
        for name in part.names if slot in ("encoder", "decoder") else (part.name,):
            assert registry.lookup(slot, name) is part


@pytest.mark.parametrize("section", ["encoder", "decoder"])
def test_an_unknown_kind_is_one_line_with_the_key_and_the_valid_kinds(section):
    with pytest.raises(UserError) as e:
        config_from_dict({"model": {section: {"kind": "nope"}}}, source="c.yaml")
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"c.yaml: model.{section}.kind: str 'nope' is not one of ")
    assert all(name in message for name in registry.names(section))


def test_an_outside_encoder_registered_by_a_call_loads_builds_and_trains(scratch_registry):
    registry.register_encoder(ConvConfig, build_conv)
    cfg = config_from_dict({"model": {"encoder": {"kind": "test_conv", "width": 12},
                                      "decoder": {"kind": "gru", "embed": 8, "hidden": 8}}})
    assert cfg.model.encoder == ConvConfig(width=12)
    model = build_model(cfg.model, V, V)
    assert isinstance(model.encoder, ConvEncoder)
    src, lengths = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])
    state = model.encode(src, lengths)
    log_probs, _ = model.step(torch.ones(2, dtype=torch.long), state)
    assert log_probs.shape == (2, V)


def test_an_outside_encoder_from_an_entry_point(scratch_registry, monkeypatch):
    class Point:
        def load(self):
            return registry.EncoderPart(ConvConfig, build_conv)

    monkeypatch.setattr(registry, "entry_points", lambda group: [Point()] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_loaded", False)
    assert registry.encoder("test_conv").config is ConvConfig


def test_a_taken_name_is_refused(scratch_registry):
    @dataclass(frozen=True)
    class Clash:
        kind: Literal["transformer"] = "transformer"

    with pytest.raises(ValueError, match="already registered"):
        registry.register_encoder(Clash, build_conv)


def test_a_part_registered_before_first_use_comes_after_the_built_ins(monkeypatch):
    """A user's script may register before anything reads the table: the default kind stays the built-in."""
    monkeypatch.setattr(registry, "_table", {slot: {} for slot in registry.SLOTS.values()})
    monkeypatch.setattr(registry, "_loaded", False)
    registry.register_encoder(ConvConfig, build_conv)
    registry.register_metric("test_metric", higher_is_better=False)
    assert registry.names("encoder")[0] == "transformer" and registry.names("encoder")[-1] == "test_conv"
    assert registry.higher_is_better("test_metric") is False
