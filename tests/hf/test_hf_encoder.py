"""``encoder: {kind: hf}``: tiny random ViT, CLIP vision, wav2vec2, Whisper and BERT models (built offline)
in front of any2seq's decoders: the processor's work matches HF's, every trained parameter gets a
gradient (DDP), freezing holds, and each tiny config trains, reloads without the HF folder and decodes."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install 'any2seq[hf]')")

from any2seq.cli import main  # noqa: E402
from any2seq.config import ModelConfig, TransformerDecoderConfig  # noqa: E402
from any2seq.data.batching import Batch  # noqa: E402
from any2seq.encoders.hf import build_hf_encoder, pretrained_state  # noqa: E402
from any2seq.encoders.hf_config import HFEncoderConfig  # noqa: E402
from any2seq.errors import UserError  # noqa: E402
from any2seq.hf.encoder_folder import read_hf_config  # noqa: E402
from any2seq.seq2seq import build_model  # noqa: E402

from .tiny_encoders import ROOT, SAVERS, vit_image_processor  # noqa: E402

TINY = ROOT / "configs" / "tiny"
GRU = "model.decoder={kind: gru, embed: 32, hidden: 32, layers: 1, dropout: 0.0}"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> the folder of a tiny HF model, saved on first use."""
    root, folders = tmp_path_factory.mktemp("hf-encoders"), {}

    def get(name: str) -> Path:
        if name not in folders:
            folders[name] = SAVERS[name](root / name)
        return folders[name]

    return get


def encoder_config(folder: Path, **fields) -> HFEncoderConfig:
    pre = folder / "preprocessor_config.json"
    return HFEncoderConfig(path=str(folder), hf_config=json.dumps(read_hf_config(folder)),
                           hf_preprocessor=pre.read_text() if pre.is_file() else "{}", **fields)


def pretrained(folder: Path, **fields):
    cfg = encoder_config(folder, **fields)
    encoder = build_hf_encoder(cfg, vocab=30)
    encoder.model.load_state_dict(pretrained_state(cfg))
    return encoder


def waves(rate: int, seconds=(1.0, 0.6)) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    rows = [np.sin(np.arange(int(rate * s)) / (3 + i)) * 0.3 + rng.normal(0, 0.05, int(rate * s))
            for i, s in enumerate(seconds)]
    out = np.zeros((len(rows), max(map(len, rows))), np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out), torch.tensor([len(r) for r in rows])


SOURCES = {  # a batch each family's encoder reads: (src, src_lengths)
    "vit": lambda: (torch.rand(2, 1, 24, 24), None),
    "clip": lambda: (torch.rand(2, 3, 32, 32), None),
    "wav2vec2": lambda: waves(8000),
    "whisper": lambda: waves(8000),
    "bert": lambda: (torch.tensor([[2, 40, 41, 3], [2, 42, 3, 0]]), torch.tensor([4, 3])),
}


def seq2seq(encoder_cfg: HFEncoderConfig, folder: Path, name: str):
    model = build_model(ModelConfig(encoder=encoder_cfg, decoder=TransformerDecoderConfig(
        d_model=32, layers=1, heads=2, ff=64, dropout=0.0)), 30, 20)
    model.encoder.model.load_state_dict(pretrained_state(encoder_cfg))
    src, lengths = SOURCES[name]()
    tgt = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    return model, Batch(src, lengths, tgt, torch.tensor([4, 3]))


# --- the processor's work inside forward -----------------------------------------------------------

def test_whisper_log_mel_equals_the_feature_extractor(saved):
    from transformers import WhisperFeatureExtractor

    folder = saved("whisper")
    encoder = pretrained(folder, sample_rate=16000)
    src, lengths = waves(16000)
    ours, positions = encoder.inputs(src, lengths)
    theirs = WhisperFeatureExtractor.from_pretrained(folder)([r[:n].numpy() for r, n in zip(src, lengths)],
                                                             sampling_rate=16000, return_tensors="pt")
    assert ours["input_features"].shape == (2, 16, 400)  # the fixed window: 2 x max_source_positions
    torch.testing.assert_close(ours["input_features"], theirs.input_features, atol=1e-4, rtol=0)
    assert positions.tolist() == [51, 31]  # 100 frames a second, halved by the encoder, of 1 s and 0.6 s


def test_wav2vec2_input_is_resampled_and_normalised_as_its_feature_extractor(saved):
    import soxr
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = saved("wav2vec2")
    encoder = pretrained(folder, sample_rate=8000).eval()
    src, lengths = waves(8000, seconds=(1.0,))
    at_16k = soxr.resample(src[0].numpy(), 8000, 16000, quality="HQ")
    inputs = Wav2Vec2FeatureExtractor.from_pretrained(folder)([at_16k], sampling_rate=16000, return_tensors="pt")
    ours, positions = encoder.inputs(src, lengths)
    torch.testing.assert_close(ours["input_values"], inputs.input_values, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        memory = encoder(src, lengths)
        theirs = Wav2Vec2Model.from_pretrained(folder).eval()(**inputs).last_hidden_state
    torch.testing.assert_close(memory.states, theirs, atol=1e-4, rtol=1e-4)
    assert memory.mask.sum().item() == positions.item() == theirs.size(1) == 49  # 320 samples a position


def test_a_wav2vec2_input_shorter_than_its_receptive_field_gives_one_position(saved):
    encoder = pretrained(saved("wav2vec2"), sample_rate=16000).eval()
    assert encoder.inputs.min_samples == 325  # the tiny model's convolutions (wav2vec2-base's: 400, 25 ms)
    with torch.no_grad():
        memory = encoder(torch.rand(2, 120) - 0.5, torch.tensor([120, 60]))
    assert memory.states.shape == (2, 1, 32) and memory.mask.all()


def test_vit_sees_what_its_image_processor_gives(saved):
    from transformers import ViTModel

    folder = saved("vit")
    encoder = pretrained(folder, channels=3).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)  # the model's size
    inputs = vit_image_processor().from_pretrained(folder)(list(pixels), return_tensors="pt")
    with torch.no_grad():
        memory = encoder(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255)
        theirs = ViTModel.from_pretrained(folder).eval()(**inputs).last_hidden_state
    torch.testing.assert_close(memory.states, theirs, atol=1e-4, rtol=1e-4)
    assert memory.mask.all() and memory.states.shape == (2, 17, 32)  # 16 patches and [CLS]


# --- gradients: DDP needs one for every trained parameter; freezing keeps them off -----------------

@pytest.mark.parametrize("name", list(SAVERS))
def test_every_trained_parameter_gets_a_gradient(saved, name):
    folder = saved(name)
    cfg = encoder_config(folder, sample_rate=8000 if name in ("wav2vec2", "whisper") else 0)
    model, batch = seq2seq(cfg, folder, name)
    model.train()
    loss, _ = model.loss(batch)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient (DDP would stop): {missing}"
    assert model.encoder.out_dim == 32


def test_freeze_all_gives_no_hf_parameter_a_gradient(saved):
    folder = saved("vit")
    model, batch = seq2seq(encoder_config(folder, freeze="all"), folder, "vit")
    model.loss(batch)[0].backward()
    assert all(not p.requires_grad and p.grad is None for p in model.encoder.model.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters() if p.requires_grad)


def test_freeze_feature_encoder_freezes_only_wav2vec2s_convolutions(saved):
    folder = saved("wav2vec2")
    model, batch = seq2seq(encoder_config(folder, freeze="feature_encoder", sample_rate=8000), folder, "wav2vec2")
    model.train()
    model.loss(batch)[0].backward()
    hf = dict(model.encoder.model.named_parameters())
    frozen = {n for n, p in hf.items() if not p.requires_grad}
    assert frozen == {n for n in hf if n.startswith("feature_extractor.")} and frozen
    assert all(hf[n].grad is None for n in frozen)
    assert all(p.grad is not None for n, p in hf.items() if n not in frozen)


# --- refusals ---------------------------------------------------------------------------------------

def train_args(config: str, folder: Path, out: Path, *sets: str) -> list[str]:
    return ["train", str(TINY / f"{config}.yaml"), "--out", str(out), "--no-progress",
            "--set", f"model.encoder.path={folder}", *(a for s in sets for a in ("--set", s))]


def test_an_unknown_model_type_is_refused_naming_the_supported_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text('{"model_type": "gpt2"}')
    assert main(train_args("captioning_vit", tmp_path / "gpt2", tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'gpt2'" in err and "supported: vit, clip_vision_model" in err
    assert not (tmp_path / "run").exists()


def test_freeze_feature_encoder_on_a_vit_is_refused(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    args = train_args("captioning_vit", saved("vit"), tmp_path / "run", "model.encoder.freeze=feature_encoder")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.encoder.freeze" in err and "vit has none" in err


def test_a_folder_without_weights_is_one_line(saved, tmp_path):
    folder = Path(shutil.copytree(saved("vit"), tmp_path / "vit"))
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match=r"model.encoder.path: .*vit: cannot read its weights"):
        pretrained_state(encoder_config(folder))


def test_a_missing_transformers_is_one_line(saved, monkeypatch):
    cfg = encoder_config(saved("vit"))
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now fails
    with pytest.raises(UserError, match=r"pip install 'any2seq\[hf\]'"):
        build_hf_encoder(cfg)


# --- the tiny configs through the command line ------------------------------------------------------

def small_corpus(folder: Path, lines: int = 1500) -> Path:
    """The first ``lines`` of Multi30k's training pairs (and a few for validation): BERT's tokenizer
    need not encode all 29k sentences for a 30-step run."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("de", "en"):
        with gzip.open(ROOT / "data" / "multi30k" / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
            text = [next(f) for _ in range(lines + 40)]
        (folder / f"train.{lang}").write_text("".join(text[:lines]), encoding="utf-8")
        (folder / f"val.{lang}").write_text("".join(text[lines:]), encoding="utf-8")
    return folder


def losses(run_dir: Path) -> list[float]:
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [r["loss"] for r in records if "loss" in r]


def decode(run_dir: Path, config: str, tmp_path: Path, capsys) -> dict:
    capsys.readouterr()
    extra = []
    if config == "translation_bert":
        (tmp_path / "t.de").write_text("Ein Hund läuft.\nZwei Männer sitzen auf einer Bank.\n", encoding="utf-8")
        (tmp_path / "t.en").write_text("A dog runs.\nTwo men sit on a bench.\n", encoding="utf-8")
        extra = ["--src", str(tmp_path / "t.de"), "--ref", str(tmp_path / "t.en")]
    assert main(["evaluate", "--model", str(run_dir), "--json", "--beam", "2", *extra]) == 0
    return json.loads(capsys.readouterr().out)


CASES = [("captioning_vit", "vit"), ("speech_wav2vec2", "wav2vec2"), ("speech_whisper", "whisper"),
         ("translation_bert", "bert")]


@pytest.mark.parametrize("decoder", ["transformer", "gru"])
@pytest.mark.parametrize("config,name", CASES, ids=[c for c, _ in CASES])
def test_a_tiny_config_trains_reloads_without_the_folder_and_decodes(saved, config, name, decoder, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the configs name the repository's data
    folder = Path(shutil.copytree(saved(name), tmp_path / name))
    sets = [GRU] if decoder == "gru" else []
    if config == "translation_bert":
        sets.append(f"data.root={small_corpus(tmp_path / 'data')}")
    run_dir = tmp_path / "run"
    assert main(train_args(config, folder, run_dir, *sets)) == 0
    steps = losses(run_dir)
    assert len(steps) == 6 and steps[-1] < steps[0]  # 30 steps, a loss every 5
    card = json.loads((run_dir / "model.json").read_text())
    assert (card["step"], card["encoder"], card["decoder"]) == (30, "hf", decoder)
    assert json.loads(yaml_encoder(run_dir)["hf_config"])["model_type"] == read_hf_config(folder)["model_type"]

    folder.rename(tmp_path / "gone")  # the model directory alone must rebuild the encoder
    headline = {"captioning_vit": "bleu", "translation_bert": "bleu"}.get(config, "wer")
    assert isinstance(decode(run_dir, config, tmp_path, capsys)[headline], float)


def yaml_encoder(run_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["encoder"]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``any2seq ARGS`` in two processes under torchrun (gloo on CPU), as tests/train/test_ddp.py runs it."""
    with socket.socket() as s:  # a free port: the OS picks one, we release it for torchrun
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "any2seq", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"})
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                    reason="this torch build has no torch.distributed with the gloo backend")
def test_an_hf_encoder_trains_under_torchrun_with_two_processes(saved, tmp_path, monkeypatch, capsys):
    """DDP refuses a model with parameters that get no gradient: the pooler is left out."""
    monkeypatch.chdir(ROOT)
    folder = Path(shutil.copytree(saved("vit"), tmp_path / "vit"))
    run_dir = tmp_path / "ddp"
    proc = torchrun(*train_args("captioning_vit", folder, run_dir))
    assert "x 2 process(es)" in proc.stderr
    steps = losses(run_dir)
    assert len(steps) == 6 and steps[-1] < steps[0]
    folder.rename(tmp_path / "gone")
    assert isinstance(decode(run_dir, "captioning_vit", tmp_path, capsys)["bleu"], float)
