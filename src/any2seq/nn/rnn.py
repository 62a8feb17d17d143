"""What the RNN encoder and decoder (Sutskever et al., 2014; Bahdanau et al., 2015) share: the cell
types a config names, and the fields of a stack of recurrent layers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from ..config_checks import MAX_LAYERS, dropout, sizes

RNN_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


@dataclass(frozen=True)
class RNNConfig:
    """A stack of recurrent layers; the encoder's and decoder's configs add their own fields."""
    kind: Literal["rnn", "gru", "lstm"] = "gru"  # the cell
    embed: int = 256
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.1

    def check(self):
        sizes(self, "embed hidden")
        sizes(self, "layers", high=MAX_LAYERS)
        dropout(self)
