"""``--dtype int8`` (opt-in, CPU): every linear layer of a text-output model multiplies by int8
weights, the model's distributions stay close to float32's, and decoding works as in float32
(workers, the command line, the errors for what it does not do)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import any2seq
from any2seq.errors import UserError

FIXTURE = Path(__file__).parent / "fixtures" / "saved_models" / "tiny_translation"
SENTENCES = ["Ein Hund läuft über die Wiese.", "Zwei Männer spielen Fußball.", "Eine Frau liest ein Buch.",
             "Ein Kind springt in einen See.", "Leute stehen vor einem Gebäude."]


def first_step_log_probs(predictor) -> torch.Tensor:
    """(B, V) log-probabilities of the first output token of each sentence."""
    model = predictor.model
    ids = predictor.toks.src.encode(SENTENCES)
    lengths = torch.tensor([len(i) for i in ids])
    src = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
    for row, i in enumerate(ids):
        src[row, : len(i)] = torch.tensor(i)
    with torch.inference_mode():
        state = model.encode(src, lengths)
        log_probs, _ = model.step(torch.full((len(ids),), model.bos), state)
    return log_probs


def test_int8_quantizes_every_linear_layer_and_stays_close_to_float32():
    fp32, int8 = any2seq.load(FIXTURE, dtype="fp32"), any2seq.load(FIXTURE, dtype="int8")
    assert int8.precision.precision == "int8" and int8.precision.record() == {"precision": "int8", "how": "forced"}
    from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

    quantized = [m for m in int8.model.modules() if isinstance(m, Int8Linear)]
    assert quantized and not [m for m in int8.model.modules() if isinstance(m, nn.Linear)]
    a, b = first_step_log_probs(fp32).exp(), first_step_log_probs(int8).exp()
    assert (a - b).abs().sum(-1).max() < 0.05, "int8 moved the first-token distributions by more than 5 % mass"
    assert all(isinstance(t, str) for t in int8.translate(SENTENCES, beam=3, max_len=20))


def test_int8_workers_decode_the_same_outputs():
    int8 = any2seq.load(FIXTURE, dtype="int8")
    one = int8.translate(SENTENCES * 4, beam=2, max_len=20, batch_size=3)
    assert int8.translate(SENTENCES * 4, beam=2, max_len=20, batch_size=3, workers=2) == one


def test_int8_is_refused_off_the_cpu_before_the_model_loads(tmp_path):
    with pytest.raises(UserError, match="int8: for decoding on a CPU"):
        any2seq.load(tmp_path / "no-model-here", device="cuda", dtype="int8")
    with pytest.raises(UserError, match="dtype: 'int4' is not one of auto, fp32, bf16, int8"):
        any2seq.load(FIXTURE, dtype="int4")


def test_translate_takes_dtype_int8_on_the_command_line():
    done = subprocess.run([sys.executable, "-m", "any2seq", "translate", "--model", str(FIXTURE), "--dtype", "int8",
                           "--beam", "2", "--max-len", "20"], input="\n".join(SENTENCES) + "\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == len(SENTENCES)
