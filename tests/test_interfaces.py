"""The seed's interfaces keep their names and call shapes; the tensor helpers every component shares."""
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from any2seq import Decoder, Encoder, EncoderDecoder
from any2seq.interfaces import (BOS_ID, Memory, PerSource, as_memory, lengths_to_mask, reorder_state,
                                shift_right)


# --- the seed example, verbatim -----------------------------------------------------------------

class RNNEncoder(Encoder):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size)

    def forward(self, X, hidden=None):
        output, hidden = self.rnn(X, hidden)
        return output, hidden


def test_seed_encoder_example_runs_verbatim():
    encoder = RNNEncoder(10, 20)

    x = torch.randn(5, 3, 10)  # (seq_len, batch, input_size)

    out, hidden = encoder(x)

    assert isinstance(encoder, Encoder) and isinstance(encoder, nn.Module)
    assert out.shape == (5, 3, 20)
    assert hidden.shape == (1, 3, 20)


class RNNDecoder(Decoder):
    """A seed-style decoder: starts from the encoder's final state, reads (T, B, E) inputs."""

    def __init__(self, input_size, hidden_size, vocab):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size)
        self.dense = nn.Linear(hidden_size, vocab)

    def init_state(self, enc_outputs, *args):
        self.seen_args = args
        return enc_outputs[1]

    def forward(self, X, state):
        output, state = self.rnn(X, state)
        return self.dense(output), state


class RecordingEncoder(RNNEncoder):
    def forward(self, X, *args):
        self.seen_args = args
        return super().forward(X)


def test_seed_encoder_decoder_composes():
    encoder, decoder = RecordingEncoder(10, 20), RNNDecoder(8, 20, 7)
    model = EncoderDecoder(encoder, decoder)
    enc_X, dec_X, valid_lens = torch.randn(5, 3, 10), torch.randn(4, 3, 8), torch.tensor([5, 4, 2])

    output, state = model(enc_X, dec_X, valid_lens)

    assert output.shape == (4, 3, 7) and state.shape == (1, 3, 20)
    assert encoder.seen_args[0] is valid_lens and decoder.seen_args[0] is valid_lens  # *args reach both
    expected, _ = decoder(dec_X, encoder(enc_X)[1])
    torch.testing.assert_close(output, expected)


def test_base_interfaces_are_abstract():
    with pytest.raises(NotImplementedError):
        Encoder()(torch.zeros(1))
    with pytest.raises(NotImplementedError):
        Decoder().init_state(None)
    with pytest.raises(NotImplementedError):
        Decoder()(torch.zeros(1), None)


# --- the label shift ----------------------------------------------------------------------------

def test_shift_right_puts_bos_first_and_drops_the_last_token():
    tgt = torch.tensor([[5, 6, 2],
                        [7, 2, 0]])  # y ends in eos (2), then padding (0)
    assert shift_right(tgt, BOS_ID).tolist() == [[BOS_ID, 5, 6],
                                                 [BOS_ID, 7, 2]]
    assert tgt.tolist() == [[5, 6, 2], [7, 2, 0]]  # the input is left alone


# --- what an encoder may return -----------------------------------------------------------------

def test_lengths_to_mask():
    assert lengths_to_mask(torch.tensor([3, 1])).tolist() == [[True, True, True], [True, False, False]]
    assert lengths_to_mask(torch.tensor([1]), 3).tolist() == [[True, False, False]]


def test_as_memory_accepts_a_tensor_or_outputs_and_hidden():
    outputs = torch.randn(2, 4, 6)  # (B, S, D)
    memory = as_memory(outputs, torch.tensor([4, 2]))
    assert memory.states is outputs and memory.final is None
    assert memory.mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert as_memory(outputs).mask.all()

    h, c = torch.randn(3, 2, 6), torch.randn(3, 2, 6)  # an LSTM's (layers, B, H) pair
    memory = as_memory((outputs, (h, c)))
    assert torch.equal(memory.final, h[-1])  # the top layer's hidden state

    given = Memory(outputs, torch.ones(2, 4, dtype=torch.bool))
    assert as_memory(given) is given


def test_as_memory_refuses_what_no_decoder_can_read():
    with pytest.raises(TypeError, match="encoder must return"):
        as_memory(torch.randn(4, 6))  # no batch or no time axis


# --- state is a value, reordered generically -----------------------------------------------------

@dataclass(frozen=True)
class Cache:
    keys: torch.Tensor
    step: int


def test_reorder_state_selects_rows_of_every_tensor_in_the_tree():
    state = {"h": torch.arange(3)[:, None].repeat(1, 2),
             "layers": [(torch.arange(3), torch.arange(3) * 10)],
             "cache": Cache(torch.arange(3) + 100, step=4), "name": "kept"}
    index = torch.tensor([2, 2, 0])
    out = reorder_state(state, index)
    assert out["h"].tolist() == [[2, 2], [2, 2], [0, 0]]
    assert out["layers"][0][0].tolist() == [2, 2, 0] and out["layers"][0][1].tolist() == [20, 20, 0]
    assert isinstance(out["layers"], list) and isinstance(out["layers"][0], tuple)
    assert out["cache"] == Cache(out["cache"].keys, 4) and out["cache"].keys.tolist() == [102, 102, 100]
    assert out["name"] == "kept"
    assert state["h"][:, 0].tolist() == [0, 1, 2]  # the old state is unchanged


def test_reorder_state_selects_per_source_nodes_by_source():
    state = {"rows": torch.arange(6), "memory": PerSource(keys=[torch.arange(3) * 10])}
    beams = reorder_state(state, torch.tensor([0, 0, 2, 2]), sources=torch.tensor([0, 2]))
    assert beams["rows"].tolist() == [0, 0, 2, 2] and beams["memory"]["keys"][0].tolist() == [0, 20]
    assert isinstance(beams["memory"], PerSource)
    kept = reorder_state(state, torch.tensor([1, 0]), sources=slice(None))  # beams swap, sources stay
    assert kept["memory"]["keys"][0].tolist() == [0, 10, 20]
    assert reorder_state(state, torch.tensor([2]))["memory"]["keys"][0].tolist() == [20]  # default: by row
