"""``precision: auto``: the choice follows the probe, is cached per machine, is recorded, and decoding
with it gives the outputs of the dtype it picked. The probe is stubbed: which precision is faster
depends on the CPU, and a test must not."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import any2seq
from any2seq import precision
from any2seq.cli import main

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "translation.yaml"
SHAPES = [(32, 32), (32, 64), (64, 32), (32, 100)]


def stub(fp32_s: float, bf16_s: float):
    """A probe that says how long each precision takes, and counts its calls."""
    import torch

    def probe(shapes, rows, dtype, train):
        probe.calls += 1
        return bf16_s if dtype == torch.bfloat16 else fp32_s

    probe.calls = 0
    return probe


@pytest.fixture(autouse=True)
def unpinned(monkeypatch, tmp_path):
    """No ANY2SEQ_PRECISION (conftest pins fp32 for the suite), and a cache of this test's own."""
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.mark.parametrize("fp32_s, bf16_s, expected", [(1.0, 2.0, "fp32"), (2.0, 1.0, "bf16")])
def test_auto_picks_whichever_the_probe_measured_faster(fp32_s, bf16_s, expected):
    choice = precision.choose("auto", SHAPES, 64, "cpu", train=True, probe=stub(fp32_s, bf16_s))
    assert choice.precision == expected and choice.how == "probe"
    assert (choice.fp32_gflops > choice.bf16_gflops) == (expected == "fp32")
    assert "fp32" in choice.line("training") and "bf16" in choice.line("training")


def test_forced_and_pinned_precisions_never_probe(monkeypatch):
    probe = stub(1.0, 2.0)
    assert precision.choose("bf16", SHAPES, 64, "cpu", train=True, probe=probe).precision == "bf16"
    assert precision.choose("float32", SHAPES, 64, "cpu", train=False, probe=probe).precision == "fp32"
    monkeypatch.setenv(precision.ENV, "bf16")
    assert precision.choose("auto", SHAPES, 64, "cpu", train=True, probe=probe).how == "env"
    assert probe.calls == 0
    with pytest.raises(any2seq.errors.UserError, match="not one of auto, fp32, bf16"):
        precision.choose("fp16", SHAPES, 64, "cpu", train=True)


def test_the_verdict_is_cached_per_machine_and_shape_class(monkeypatch):
    monkeypatch.setattr(precision, "time_products", stub(2.0, 1.0))
    first = precision.choose("auto", SHAPES, 64, "cpu", train=True)
    monkeypatch.setattr(precision, "time_products", stub(1.0, 2.0))  # would now say fp32
    again = precision.choose("auto", SHAPES, 64, "cpu", train=True)
    assert (first.precision, first.how) == ("bf16", "probe") and (again.precision, again.how) == ("bf16", "cached")
    assert precision.choose("auto", SHAPES, 64, "cpu", train=False).how == "probe"  # decoding is another class
    assert precision.choose("auto", [(512, 512)], 64, "cpu", train=True).how == "probe"  # so is a wider model


def test_the_real_probe_times_both_precisions():
    import torch

    for dtype in (torch.float32, torch.bfloat16):
        for train in (True, False):
            assert precision.time_products(SHAPES, 16, dtype, train, repeats=1) > 0


@pytest.mark.parametrize("faster", ["fp32", "bf16"])
def test_decoding_with_auto_equals_the_dtype_it_picked(trained, faster, monkeypatch):
    monkeypatch.setattr(precision, "time_products", stub(1.0, 2.0) if faster == "fp32" else stub(2.0, 1.0))
    auto = any2seq.load(trained.dir, dtype="auto")
    assert auto.precision.precision == faster and auto.precision.measured
    sources = [src for src, _ in trained.pairs]
    forced = any2seq.load(trained.dir, dtype=faster)
    assert auto.translate(sources, beam=3) == forced.translate(sources, beam=3)


def test_training_records_the_choice_in_metrics_and_card(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "time_products", stub(1.0, 3.0))
    out = tmp_path / "run"
    sets = [f"data.root={corpus}", "tokenizer.vocab_size=100", "train.max_steps=2", "train.valid_every=2"]
    assert main(["train", str(TINY), "--out", str(out), "--no-progress", *[a for s in sets for a in ("--set", s)]]) == 0
    assert "training precision fp32 (auto, probe: fp32 " in capsys.readouterr().err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[0] == {"step": 0, "precision": {"precision": "fp32", "how": "probe", "fp32_gflops":
                                                   records[0]["precision"]["fp32_gflops"], "bf16_gflops":
                                                   records[0]["precision"]["bf16_gflops"]}}
    assert json.loads((out / "model.json").read_text())["precision"]["precision"] == "fp32"


def test_old_bf16_key_still_loads_as_precision(tmp_path, capsys):
    from any2seq.config import load_config

    path = tmp_path / "old.yaml"
    path.write_text("train: {bf16: true}\n")
    assert load_config(path).train.precision == "bf16"
    assert "train.bf16: true is now train.precision: bf16" in capsys.readouterr().err
    assert load_config(path, ["train.bf16=false"]).train.precision == "fp32"


def test_a_close_call_is_measured_again_rather_than_cached(monkeypatch):
    monkeypatch.setattr(precision, "time_products", stub(1.0, 0.95))  # bf16 5 % faster: noise or load could do it
    assert precision.choose("auto", SHAPES, 64, "cpu", train=True).precision == "bf16"
    monkeypatch.setattr(precision, "time_products", stub(0.95, 1.0))
    again = precision.choose("auto", SHAPES, 64, "cpu", train=True)
    assert (again.precision, again.how) == ("fp32", "probe")


def test_a_slow_dtype_is_judged_by_the_scout_pass_alone(monkeypatch):
    """AVX2-only CPUs multiply bf16 ~100x slower than float32: the probe must not spend minutes proving it."""
    calls = []

    def fake_pass(shapes, rows, dtype, train, repeats):
        calls.append(rows)
        return 1.0 if rows == precision.SCOUT_ROWS else 0.01  # the scout: 1 s for 16 rows

    monkeypatch.setattr(precision, "_pass_seconds", fake_pass)
    assert precision.time_products([(8, 8)], 1600, torch.bfloat16, train=True) == 100.0
    assert calls == [precision.SCOUT_ROWS]  # no full pass
    calls.clear()
    monkeypatch.setattr(precision, "_pass_seconds", lambda *a, **k: calls.append(a[1]) or 0.001)
    precision.time_products([(8, 8)], 1600, torch.float32, train=True)
    assert calls == [precision.SCOUT_ROWS, 1600]  # a fast scout: the full measurement follows


def test_a_verdict_the_two_rounds_disagree_on_is_not_cached(monkeypatch):
    """Another process's burst of load slowed one fp32 timing 200x: the best of each precision
    still picks fp32, and the contested verdict is measured again next time rather than cached."""
    import torch

    times = iter([2.0, 1.0, 1.0, 0.01])  # round 1: fp32 (under load), bf16; round 2: bf16, fp32

    def probe(shapes, rows, dtype, train):
        return next(times)

    first = precision.choose("auto", SHAPES, 64, "cpu", train=False, probe=probe)
    assert (first.precision, first.how) == ("fp32", "probe")
    monkeypatch.setattr(precision, "time_products", stub(0.01, 1.0))
    again = precision.choose("auto", SHAPES, 64, "cpu", train=False)
    assert (again.precision, again.how) == ("fp32", "probe")
    assert torch.float32 == again.dtype


ZEN3 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu avx avx2\n\nprocessor\t: 1\n")  # a second processor's block: only the first is read
ZEN5 = ZEN3.replace(": 25", ": 26").replace("model\t\t: 1", "model\t\t: 2").replace("avx2", "avx2 avx512f avx512_bf16")


def test_the_cpu_name_tells_apart_cpus_that_share_a_model_name():
    """Figures and cached verdicts say which CPU they came from: "AMD EPYC" alone is two CPUs, one where
    bf16 is the slow path and one where it is the fast one."""
    zen3, zen5 = precision.cpu_name(ZEN3), precision.cpu_name(ZEN5)
    assert zen3.startswith("AMD EPYC (family 25 model 1, ") and "bf16" not in zen3
    assert zen5.startswith("AMD EPYC (family 26 model 2, ") and zen5.endswith(", avx512_bf16)")
    assert precision.cpu_name("model name\t: Apple M2\n") == "Apple M2"  # no x86 family: the name as it is
