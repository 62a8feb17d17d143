"""Leave-one-speaker-out for a speech recipe: for each speaker of the recordings, train the recipe
with that speaker left out (``data.held_out_speaker``) and score the model on all of that speaker's
recordings (``evaluate --split held_out``). Prints each speaker's WER, the mean and the worst as a
Markdown table and writes them to OUT/speakers.json.

    python benchmarks/speakers.py --config configs/speech.yaml --out runs/speakers
    python benchmarks/speakers.py --config configs/speech.yaml --out runs/speakers --speakers lucas george \\
        --set train.threads=1 --set data.synthetic=0

A speaker whose run already holds a finished model (OUT/SPEAKER/model.json) is evaluated, not
trained again: a long table can be built over several sessions, and ``--reuse SPEAKER=RUN`` takes a
run made elsewhere (the recipe's own run holds out "lucas"). Each run's wall time comes from its
metrics.jsonl.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from any2seq.config import load_config
from any2seq.data.audio import fsdd_recordings
from any2seq.precision import cpu_name


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "any2seq", *args]


def speakers_of(config: Path, overrides: list[str]) -> list[str]:
    """Every speaker in the recipe's data.root, as the speech task reads it."""
    cfg = load_config(config, overrides)
    return sorted({r.speaker for r in fsdd_recordings(cfg.data.root)})


def train_minutes(run: Path) -> float | None:
    """Minutes of training the run logged (its last elapsed_s, which a resumed run carries on)."""
    elapsed = [json.loads(line).get("elapsed_s") for line in
               (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    elapsed = [e for e in elapsed if e is not None]
    return round(elapsed[-1] / 60, 1) if elapsed else None


def held_out_scores(run: Path, beam: int) -> dict:
    out = subprocess.run(cli("evaluate", "--model", str(run), "--split", "held_out", "--beam", str(beam), "--json"),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(rows: dict[str, dict]) -> str:
    wers = [r["wer"] for r in rows.values()]
    lines = ["| speaker left out | WER % | CER % | training minutes |", "|---|---|---|---|"]
    lines += [f"| {s} | {r['wer']:.2f} | {r['cer']:.2f} | {r['minutes'] if r['minutes'] is not None else '?'} |"
              for s, r in rows.items()]
    lines += [f"| **mean** | **{sum(wers) / len(wers):.2f}** | | |", f"| **worst** | **{max(wers):.2f}** | | |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=Path("configs/speech.yaml"))
    p.add_argument("--out", type=Path, default=Path("runs/speakers"))
    p.add_argument("--speakers", nargs="*", help="the speakers to leave out in turn (default: every one)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides for every run (e.g. train.threads=1)")
    p.add_argument("--reuse", action="append", default=[], metavar="SPEAKER=RUN",
                   help="a finished run that already left SPEAKER out, evaluated instead of trained")
    p.add_argument("--beam", type=int, default=5)
    args = p.parse_args(argv)

    reuse = dict(item.split("=", 1) for item in args.reuse)
    speakers = args.speakers or speakers_of(args.config, args.overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for speaker in speakers:
        run = Path(reuse.get(speaker, args.out / speaker))
        if not (run / "model.json").exists():
            started = time.time()
            print(f"speakers: training without {speaker} -> {run}", file=sys.stderr, flush=True)
            subprocess.run(cli("train", str(args.config), "--out", str(run), "--set",
                               f"data.held_out_speaker={speaker}", *[a for o in args.overrides for a in ("--set", o)]),
                           check=True)
            print(f"speakers: {speaker} trained in {(time.time() - started) / 60:.1f} min", file=sys.stderr)
        held = load_config(run / "config.yaml").data.held_out_speaker
        if held != speaker:
            raise SystemExit(f"{run}: its model left out {held!r}, not {speaker!r}")
        scores = held_out_scores(run, args.beam)
        rows[speaker] = {"wer": scores["wer"], "cer": scores["cer"], "minutes": train_minutes(run), "run": str(run)}
        print(f"speakers: {speaker}: WER {scores['wer']:.2f}", file=sys.stderr, flush=True)
    wers = [r["wer"] for r in rows.values()]
    summary = {"config": str(args.config), "overrides": args.overrides, "beam": args.beam, "speakers": rows,
               "mean_wer": sum(wers) / len(wers), "worst_wer": max(wers), "cpu": cpu_name()}
    (args.out / "speakers.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
