"""Captioning on a user's own COCO-format folder: train, evaluate and predict through the command
line, and the Python API reads the same images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import any2seq
from any2seq.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {"a white square": lambda a: a.__setitem__((slice(4, 12), slice(4, 12)), 255),
          "a white bar": lambda a: a.__setitem__((slice(7, 9), slice(0, 16)), 255),
          "an empty image": lambda a: None}


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    """root/{train,valid,test}.json and root/images/*.png (RGB, 16x16), two captions for some images."""
    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    images, notes = [], []
    for i, (caption, draw) in enumerate(SHAPES.items()):
        pixels = np.zeros((16, 16), np.uint8)
        draw(pixels)
        Image.fromarray(np.stack([pixels] * 3, -1)).save(root / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png"})
        notes.append({"id": 10 + i, "image_id": i, "caption": caption})
    notes.append({"id": 99, "image_id": 0, "caption": "a square"})
    for split in ("train", "valid", "test"):
        (root / f"{split}.json").write_text(json.dumps({"images": images, "annotations": notes}))
    return root


def test_train_evaluate_and_predict_on_a_coco_folder(coco, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    run = tmp_path / "run"
    assert main(["train", "configs/tiny/captioning.yaml", "--out", str(run), "--no-progress",
                 "--set", "data.source=coco", "--set", f"data.root={coco}", "--set", "data.size=16",
                 "--set", "model.encoder.channels=3", "--set", "train.max_steps=30", "--set", "train.lr=1e-2",
                 "--set", "train.valid_every=30", "--set", "train.batch_tokens=64"]) == 0
    card = json.loads((run / "model.json").read_text())
    assert card["task"] == "captioning" and "COCO" in card["data"]["source"]
    capsys.readouterr()

    assert main(["evaluate", "--model", str(run), "--split", "test", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"bleu", "exact"} <= set(metrics)
    assert metrics["exact"] >= 50.0  # three images, memorised in 30 steps

    image = coco / "images" / "1.png"
    assert main(["predict", "--model", str(run), str(image)]) == 0
    assert capsys.readouterr().out.strip() == "a white bar"
    assert any2seq.load(run).predict([image.read_bytes()])[0]["outputs"][0]["text"] == "a white bar"


def test_a_missing_caption_file_is_named(coco, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["train", "configs/tiny/captioning.yaml", "--out", str(tmp_path / "run"), "--no-progress",
                 "--set", "data.source=coco", "--set", f"data.root={coco}", "--set", "data.valid=nope.json"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "data.valid" in err and "nope.json" in err and "\n" not in err
