"""The command line end to end: ``any2seq train`` (the session fixtures run it), then translate,
evaluate and average on what it wrote; a tiny model memorises 20 pairs exactly."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import any2seq
from any2seq.cli import main
from any2seq.train.checkpoint import checkpoint_dirs, load_tensors

from .conftest import N_PAIRS, STEPS

ANY2SEQ = Path(sys.executable).parent / "any2seq"
COMMANDS = ["train", "translate", "evaluate", "average"]


def cli(capsys, monkeypatch, *args, stdin: str = "") -> str:
    """Run ``any2seq ARGS`` in this process with ``stdin``; its stdout."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8"))
    capsys.readouterr()  # drop what came before, e.g. a session fixture's training log
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_train_writes_a_model_directory(trained):
    names = {p.name for p in trained.dir.iterdir()}
    assert {"config.yaml", "model.json", "model.safetensors", "spm.model", "metrics.jsonl", "checkpoints"} <= names
    assert [c.name for c in checkpoint_dirs(trained.dir)] == ["step_00000100", "step_00000200", "step_00000300"]
    config = (trained.dir / "config.yaml").read_text()
    assert f"max_steps: {STEPS}" in config and "label_smoothing: 0.0" in config  # the --set overrides


@pytest.mark.parametrize("run", ["trained", "trained_rnn"], ids=["transformer", "gru-bahdanau"])
def test_a_tiny_model_memorises_20_pairs_exactly(run, request, capsys, monkeypatch):
    run = request.getfixturevalue(run)
    sources, targets = zip(*run.pairs)
    assert len(sources) == N_PAIRS
    out = cli(capsys, monkeypatch, "translate", "--model", run.dir, "--beam", 1, stdin="\n".join(sources) + "\n")
    assert out.splitlines() == list(targets)


def test_translate_reads_stdin_lines_and_writes_as_many_in_order(trained, capsys, monkeypatch):
    sources = [de for de, _ in trained.pairs[:4]]
    alone = [cli(capsys, monkeypatch, "translate", "--model", trained.dir, stdin=s + "\n") for s in sources]
    assert all(out.count("\n") == 1 for out in alone)
    lines = [sources[2], "", sources[0], sources[3], "", sources[1]]
    out = cli(capsys, monkeypatch, "translate", "--model", trained.dir, stdin="\n".join(lines) + "\n")
    assert out == "".join([alone[2], "\n", alone[0], alone[3], "\n", alone[1]])


def test_translate_search_flags(trained, capsys, monkeypatch):
    stdin = "".join(de + "\n" for de, _ in trained.pairs[:5]) + "Ein Hund läuft.\n"
    beam = cli(capsys, monkeypatch, "translate", "--model", trained.dir, "--beam", 4, stdin=stdin)
    assert beam.splitlines() == any2seq.load(trained.dir).translate(stdin.splitlines(), beam=4)
    workers = ["--workers", 2, "--batch-size", 2]  # three batches, two at a time
    assert cli(capsys, monkeypatch, "translate", "--model", trained.dir, "--beam", 4, *workers, stdin=stdin) == beam

    default = cli(capsys, monkeypatch, "translate", "--model", trained.dir, stdin=stdin).splitlines()
    n_best = cli(capsys, monkeypatch, "translate", "--model", trained.dir, "--n-best", 2, stdin=stdin).splitlines()
    assert len(n_best) == 6
    for row, best in zip(n_best, default):
        fields = row.split("\t")
        assert len(fields) == 2 and fields[0] == best and fields[1] != best

    sample = ["translate", "--model", trained.dir, "--sample", "--top-k", 5]
    first = cli(capsys, monkeypatch, *sample, "--seed", 1, stdin=stdin)
    assert cli(capsys, monkeypatch, *sample, "--seed", 1, stdin=stdin) == first
    assert cli(capsys, monkeypatch, *sample, "--seed", 2, stdin=stdin) != first
    assert len(first.splitlines()) == 6


def test_evaluate_prints_bleu_chrf_and_the_sacrebleu_signature(trained, corpus, capsys, monkeypatch):
    args = ["evaluate", "--model", trained.dir, "--src", corpus / "train.de", "--ref", corpus / "train.en", "--json"]
    scores = json.loads(cli(capsys, monkeypatch, *args, "--beam", 1))
    assert set(scores) == {"bleu", "chrf", "signature"}
    assert scores["bleu"] == 100.0 and scores["chrf"] == 100.0  # the memorised pairs
    assert "nrefs:1" in scores["signature"] and "case:mixed" in scores["signature"]
    lowercase = json.loads(cli(capsys, monkeypatch, *args, "--lowercase"))
    assert "case:lc" in lowercase["signature"]

    unseen = ["evaluate", "--model", trained.dir, "--src", corpus / "test.de", "--ref", corpus / "test.en"]
    text = cli(capsys, monkeypatch, *unseen, "--beam", 2)
    assert text.startswith("BLEU ") and "\nchrF " in text and "case:mixed" in text
    assert json.loads(cli(capsys, monkeypatch, *unseen, "--beam", 2, "--json"))["bleu"] < 50


def test_average_writes_a_loadable_model_of_the_mean_weights(trained, tmp_path, capsys, monkeypatch):
    out = tmp_path / "averaged"
    cli(capsys, monkeypatch, "average", trained.dir, "--last", 2, "--out", out)
    last_two = [load_tensors(c / "model.safetensors") for c in checkpoint_dirs(trained.dir)[-2:]]
    averaged = load_tensors(out / "model.safetensors")
    assert set(averaged) == set(last_two[0])
    for name, tensor in averaged.items():
        torch.testing.assert_close(tensor, (last_two[0][name] + last_two[1][name]) / 2)
    translations = any2seq.load(out).translate([de for de, _ in trained.pairs[:3]], beam=2)
    assert len(translations) == 3 and all(isinstance(t, str) for t in translations)


def test_help_lists_the_commands_and_each_shows_an_example(capsys):
    result = subprocess.run([ANY2SEQ, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit:
            main([command, "--help"])
        assert exit.value.code == 0
        text = capsys.readouterr().out
        assert "examples:" in text and f"any2seq {command} " in text


def test_the_installed_command_translates_stdin(trained):
    result = subprocess.run([ANY2SEQ, "translate", "--model", trained.dir, "--beam", "1"],
                            input=f"{trained.pairs[0][0]}\n\n{trained.pairs[1][0]}\n", capture_output=True,
                            text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [trained.pairs[0][1], "", trained.pairs[1][1]]


def test_the_module_docstring_names_every_command():
    """cli.py's first lines are where a reader looks for what the command line can do."""
    import any2seq.cli

    listed = any2seq.cli.__doc__.split("``")[1].replace("any2seq", "").split("|")
    assert [name.strip() for name in listed] == list(any2seq.cli.COMMANDS)


ROOT = Path(__file__).resolve().parents[1]


def test_evaluate_files_scores_a_text_task_with_its_own_metrics(tmp_path, capsys, monkeypatch):
    """--src/--ref on a text generation model: what --split reports (coverage, distinct_2), not chrF."""
    monkeypatch.chdir(ROOT)  # the tiny config names the repository's data
    run = tmp_path / "run"
    assert main(["train", "configs/tiny/text_generation.yaml", "--out", str(run), "--no-progress",
                 "--set", "train.max_steps=2", "--set", "train.valid_every=2", "--set", "data.max_examples=40"]) == 0
    (tmp_path / "concepts").write_text("dog grass run\nbike man road\n", encoding="utf-8")
    (tmp_path / "captions").write_text("A dog runs on the grass.\nA man rides a bike on the road.\n", encoding="utf-8")
    files = ["evaluate", "--model", run, "--src", tmp_path / "concepts", "--ref", tmp_path / "captions", "--beam", 1]
    split = json.loads(cli(capsys, monkeypatch, "evaluate", "--model", run, "--split", "test", "--json", "--beam", 1))
    scores = json.loads(cli(capsys, monkeypatch, *files, "--json"))
    assert set(scores) == set(split) and {"coverage", "distinct_2"} <= set(scores) and "chrf" not in scores
    text = cli(capsys, monkeypatch, *files)
    assert "\ncoverage " in text and not text.startswith("BLEU ")
    assert main([str(a) for a in files] + ["--lowercase"]) == 2  # sacreBLEU's option: refused, not ignored
    assert "--lowercase" in capsys.readouterr().err


def test_evaluate_files_sends_a_text_to_video_model_to_split(tmp_path, capsys):
    """Refused from the config alone, before any weights load (there are none here)."""
    model = tmp_path / "t2v"
    model.mkdir()
    (model / "config.yaml").write_text((ROOT / "configs" / "tiny" / "text_to_video.yaml").read_text())
    (tmp_path / "src").write_text("digit 3 moving down-left quickly\n")
    assert main(["evaluate", "--model", str(model), "--src", str(tmp_path / "src"), "--ref",
                 str(tmp_path / "src")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "makes frames" in err and "--split" in err
