"""Each task picks its best checkpoint by a metric it reports, in that metric's direction; a config
naming a metric its task does not report is refused when it loads."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from any2seq.cli import main
from any2seq.config import load_config
from any2seq.plots import run_metrics
from any2seq import registry
from any2seq.task_metrics import selected_metric

TINY = Path(__file__).resolve().parents[2] / "configs" / "tiny"


def without_metric(tmp_path: Path, name: str) -> Path:
    raw = yaml.safe_load((TINY / f"{name}.yaml").read_text())
    raw["train"].pop("metric", None)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("name", registry.names("task"))
def test_each_task_defaults_to_the_first_metric_it_declares(tmp_path, name):
    """Video tasks keep the lowest-MSE checkpoint, speech the lowest WER, text tasks the highest BLEU."""
    cfg = load_config(without_metric(tmp_path, name))  # every task has its configs/tiny/<task>.yaml
    assert selected_metric(cfg.task, cfg.train.metric, decode=True) == registry.task(name).metrics[0]
    assert selected_metric(cfg.task, cfg.train.metric, decode=False) == "loss"  # valid_bleu: false decodes nothing


def test_a_metric_the_task_does_not_report_is_refused_in_one_line(tmp_path):
    config = without_metric(tmp_path, "speech")
    proc = subprocess.run([sys.executable, "-m", "any2seq", "train", str(config), "--set", "train.metric=bleu",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("any2seq train: error: --set train.metric: bleu is not reported by the speech "
                                   "task (its metrics: wer, cer, loss)")
    assert not (tmp_path / "run").exists()
    for metric in ("ssim", "coverage"):  # selectable where their task reports them
        task = "video_prediction" if metric == "ssim" else "text_generation"
        assert metric in registry.task(task).metrics


def test_a_video_config_without_metric_keeps_the_lowest_mse_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    run = tmp_path / "run"
    assert main(["train", str(without_metric(tmp_path, "video_prediction")), "--out", str(run), "--no-progress",
                 "--set", "train.max_steps=6", "--set", "train.valid_every=1"]) == 0
    assert "best valid mse" in capsys.readouterr().err
    valid = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "valid_mse" in r]
    best = min(valid, key=lambda r: r["valid_mse"])
    card = json.loads((run / "model.json").read_text())
    assert (card["step"], card["valid"]["mse"]) == (best["step"], best["valid_mse"])
    assert run_metrics(run, valid) == ["mse", "ssim"]  # and the curves plot them
