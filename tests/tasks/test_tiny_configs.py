"""Every task trains from its tiny config, evaluates its split and predicts, through the command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from any2seq import registry
from any2seq.cli import main
from any2seq.config import load_config

ROOT = Path(__file__).resolve().parents[2]
# the `kind: hf` configs need the tiny HF model folders that tests/hf/test_hf_encoder.py builds and runs them with
TINY = sorted(p for p in (ROOT / "configs" / "tiny").glob("*.yaml") if "kind: hf" not in p.read_text())


def example_input(task: str, tmp: Path) -> tuple[list[str], str]:
    """(INPUT arguments, stdin text) that ``any2seq predict`` takes for a task."""
    if task == "captioning":
        from PIL import Image

        path = tmp / "scene.png"
        Image.fromarray(np.full((20, 20), 128, np.uint8)).save(path)
        return [str(path)], ""
    if task == "speech":
        import wave

        path = tmp / "utterance.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes((np.sin(np.arange(4000) / 5) * 8000).astype("<i2").tobytes())
        return [str(path)], ""
    if task == "video_prediction":
        from any2seq.data.video import moving_digits, write_gif

        path = tmp / "clip.gif"
        write_gif(path, moving_digits("test", 1, 0, frames=6, canvas=16, size=8)[0])
        return [str(path)], ""
    sentences = {"translation": "Ein Hund läuft über die Wiese.", "text_generation": "dog grass run",
                 "text_to_video": "digit 3 moving down-left quickly"}
    return [], sentences[task] + "\n"


@pytest.mark.parametrize("config", TINY, ids=[p.stem for p in TINY])
def test_every_task_trains_evaluates_and_predicts_from_its_tiny_config(config, tmp_path, monkeypatch, capsys):
    import yaml

    task = yaml.safe_load(config.read_text()).get("task", "translation")
    frames = registry.decoder(load_config(config).model.decoder.kind).frames  # the task's output is video
    monkeypatch.chdir(ROOT)  # tiny configs name the repository's data
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--no-progress", "--set", "train.max_steps=2",
                 "--set", "train.valid_every=2"]) == 0
    card = json.loads((run / "model.json").read_text())
    assert card["task"] == task and card["step"] == 2
    assert card["precision"]["precision"] in ("fp32", "bf16")
    # The task's validation reports every metric task_metrics.py says it does (the selectable ones).
    valid = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "valid_loss" in r]
    if yaml.safe_load((run / "config.yaml").read_text())["train"]["valid_bleu"]:  # validation decodes
        assert {f"valid_{m}" for m in registry.task(task).metrics} <= valid[-1].keys()
    capsys.readouterr()

    strip = ["--strip", str(tmp_path / "strip.png")] if frames else []
    assert main(["evaluate", "--model", str(run), "--split", "test", "--json", "--beam", "1", *strip]) == 0
    metrics = json.loads(capsys.readouterr().out)
    if strip:
        from PIL import Image

        assert Image.open(strip[1]).size[1] > 4 * 16  # rows of true and predicted frames
    for metric in registry.task(task).metrics:  # what validation reports, evaluate reports too
        assert metric == "loss" or isinstance(metrics[metric], float), metric
    reader_keys = {"video_prediction": {"reader_acc", "reader_true_acc", "ssim", "copy_last_mse"},
                   "text_to_video": {"reader_acc", "reader_true_acc", "ssim", "direction_acc", "speed_acc"}}
    assert reader_keys.get(task, set()) <= metrics.keys()  # the digit reader's metrics (tests/test_video_reader.py)

    inputs, stdin = example_input(task, tmp_path)
    monkeypatch.setattr(sys, "stdin", type("In", (), {"buffer": type("B", (), {"read": lambda s: stdin.encode()})()})())
    out = ["--out", str(tmp_path / "frames")] if frames else []
    assert main(["predict", "--model", str(run), *inputs, *out, "--beam", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    if out:
        assert Path(lines[0].split("\t")[1]).is_file()  # the GIF of the predicted frames


def test_every_task_has_a_tiny_config():
    import yaml

    tasks = {yaml.safe_load(p.read_text()).get("task", "translation") for p in TINY}
    assert set(registry.names("task")) <= tasks
