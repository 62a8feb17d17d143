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


@pytest.fixture(scope="module")
def coco_run(coco, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "captioning"
    assert main(["train", str(ROOT / "configs/tiny/captioning.yaml"), "--out", str(run), "--no-progress",
                 "--set", "data.source=coco", "--set", f"data.root={coco}", "--set", "data.size=16",
                 "--set", "model.encoder.channels=3", "--set", "train.max_steps=30", "--set", "train.lr=1e-2",
                 "--set", "train.valid_every=30", "--set", "train.batch_tokens=64"]) == 0
    return run


def test_train_evaluate_and_predict_on_a_coco_folder(coco, coco_run, capsys):
    run = coco_run
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


def test_evaluate_on_a_manifest_of_my_own_images(coco, coco_run, tmp_path, capsys, monkeypatch):
    """--src: image paths relative to the manifest, captions in it (JSON lines) or in --ref."""
    lines = [{"file_name": f"../images/{i}.png", "caption": caption} for i, caption in enumerate(SHAPES)]
    (coco / "mine").mkdir()
    (coco / "mine" / "photos.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (coco / "mine" / "paths.txt").write_text("".join(line["file_name"] + "\n" for line in lines))
    (coco / "mine" / "captions.txt").write_text("".join(line["caption"] + "\n" for line in lines))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(coco_run), "--src", str(coco / "mine" / "photos.jsonl"), "--json",
                 "--hyps", "hyps.txt"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    hyps = (tmp_path / "hyps.txt").read_text().splitlines()
    assert {"bleu", "exact", "signature"} == set(metrics) and len(hyps) == 3
    assert metrics["exact"] == pytest.approx(100 * sum(h == c for h, c in zip(hyps, SHAPES)) / 3, abs=0.01)
    assert hyps[1] == "a white bar"  # the image predict reads, found through the manifest's relative path
    assert main(["evaluate", "--model", str(coco_run), "--src", str(coco / "mine" / "paths.txt"),
                 "--ref", str(coco / "mine" / "captions.txt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == metrics
    (coco / "mine" / "paths.txt").write_text("../images/0.png\n../images/none.png\n../images/2.png\n")
    assert main(["evaluate", "--model", str(coco_run), "--src", str(coco / "mine" / "paths.txt"),
                 "--ref", str(coco / "mine" / "captions.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"any2seq evaluate: error: {coco / 'mine' / 'paths.txt'}:2: ") and "none.png" in err


def test_a_missing_caption_file_is_named(coco, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["train", "configs/tiny/captioning.yaml", "--out", str(tmp_path / "run"), "--no-progress",
                 "--set", "data.source=coco", "--set", f"data.root={coco}", "--set", "data.valid=nope.json"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "data.valid" in err and "nope.json" in err and "\n" not in err
