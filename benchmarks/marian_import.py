"""Decoding speed on a user's own weights: one MarianMTModel of opus-mt's shape (random weights,
built offline: ``marian_model.py``) decoded by Hugging Face ``generate`` and, after ``any2seq
import-hf``, by any2seq, on the same sentences in the same batches, greedy and beam 5, each system
at each of its precisions.

    make bench-marian MARIAN_ARGS="--sentences 300"
    PYTHONPATH=src python benchmarks/marian_import.py [--sentences 200] [--max-len 64] [--threads 2]

The model and its import are cached in ``--workdir`` (benchmarks/.work/marian/). The sources: the
first ``--sentences`` lines of test_2016_flickr.de, sorted longest first (MarianTokenizer's
length) and cut into batches of ``--batch-size``; each system decodes one batch untimed, then all
of them, timed from text in to text out (tokenising, search, detokenising); with ``--rounds N``
every row is timed N times, rows in turn, and keeps its fastest. Both stop a sentence
at </s> or at ``--max-len`` output tokens: HF with ``max_new_tokens``, ``forced_eos_token_id=None``
(opus-mt's generation config forces </s> at the limit) and ``early_stopping=True`` for beam search
(HF's default keeps searching after the beam is full); any2seq with ``max_len_a=0, max_len_b=max
len``. Length penalty 1.0 both. A model with random weights rarely says </s>, so most outputs run
to the limit (the table's mean length says how far); ``--train-steps`` trains it briefly first.

Precisions: HF ``fp32``, ``bf16-autocast`` (fp32 weights, ``generate`` under CPU bf16 autocast)
and ``bf16`` (weights cast to bf16); any2seq ``any2seq.load(dtype=fp32|bf16|auto)``, ``auto``
naming what it chose. "same" counts the outputs (token ids up to </s>) equal to HF fp32's for
the same search: fp32 against fp32 should be all of them.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
import warnings
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from marian_model import SHAPES, build_marian, read_multi30k  # noqa: E402

from any2seq.precision import cpu_name  # noqa: E402

SEARCHES = {"greedy": 1, "beam5": 5}
HF_PRECISIONS = ("fp32", "bf16-autocast", "bf16")
ANY2SEQ_PRECISIONS = ("fp32", "bf16", "auto")


def model_dirs(workdir: Path, shape: str, train_steps: int) -> tuple[Path, Path]:
    """The HF model directory and its any2seq import, built (and imported) once per shape and steps."""
    root = workdir / f"{shape}-steps{train_steps}"
    hf_dir, imported = root / "hf", root / "any2seq"
    if not hf_dir.is_dir():
        shutil.rmtree(root, ignore_errors=True)  # an import of an older build goes with it
        de, en = read_multi30k("train", "de"), read_multi30k("train", "en")
        pairs = [(s, t) for s, t in zip(de, en) if len(s) <= 60][:64]
        print(f"building {hf_dir} ...", file=sys.stderr)
        lr = 5e-4 if SHAPES[shape].d_model >= 256 else 5e-3  # a post-LN d 512 model diverges at the tiny one's rate
        build_marian(root / "hf.tmp", de + en, SHAPES[shape], pairs, train_steps, lr=lr)
        (root / "hf.tmp").rename(hf_dir)  # whole or not at all: an interrupted build is not reused
    if not imported.is_dir():
        from any2seq.cli import main as any2seq_cli

        if any2seq_cli(["import-hf", str(hf_dir), "--out", str(imported)]) != 0:
            raise SystemExit(f"any2seq import-hf {hf_dir} failed")
    return hf_dir, imported


def hf_system(hf_dir: Path, precision: str, max_len: int):
    """``run(lines, beam) -> (ids, texts)`` by ``MarianMTModel.generate``; ids are Marian's, up to </s>."""
    import transformers
    from transformers import MarianMTModel, MarianTokenizer

    transformers.logging.set_verbosity_error()
    tok = MarianTokenizer.from_pretrained(hf_dir)
    model = MarianMTModel.from_pretrained(hf_dir).eval()
    if precision == "bf16":
        model.to(torch.bfloat16)
    eos = tok.eos_token_id

    @torch.inference_mode()
    def run(lines: list[str], beam: int):
        batch = tok(lines, padding=True, return_tensors="pt")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-autocast"):
            out = model.generate(**batch, num_beams=beam, max_new_tokens=max_len, do_sample=False,
                                 length_penalty=1.0, early_stopping=beam > 1, forced_eos_token_id=None)
        ids = []
        for row in out.tolist():
            row = row[1:]  # the decoder start
            ids.append(row[: row.index(eos)] if eos in row else row)
        return ids, tok.batch_decode(out, skip_special_tokens=True)

    return run, precision


def any2seq_system(imported: Path, dtype: str, max_len: int):
    """``run(lines, beam) -> (ids, texts)`` by the model ``any2seq.load`` gives, through what
    ``Predictor.translate`` runs (tokenise, ``decode_ids``, detokenise), with the ids mapped back to
    Marian's; and the precision it decodes in."""
    import any2seq
    from any2seq.hf.tokenizer import any2seq_order, read_vocab
    from any2seq.inference import decode_ids

    predictor = any2seq.load(imported, dtype=dtype)
    order = any2seq_order(read_vocab(imported / "vocab.json"))  # order[any2seq id] = Marian id
    toks = predictor.toks

    def run(lines: list[str], beam: int):
        opts = replace(predictor.options(beam=beam, max_len=max_len, length_penalty=1.0), max_len_a=0,
                       max_len_b=max_len)
        best = [n_best[0].tokens for n_best in decode_ids(predictor.model, toks.src.encode(lines), opts,
                                                          batch_tokens=10 ** 9, batch_size=len(lines))]
        return [[order[i] for i in ids] for ids in best], toks.tgt.decode(best)

    chosen = predictor.precision
    return run, f"auto: {chosen.precision} ({chosen.how})" if dtype == "auto" else dtype


def timed(run, batches: list[list[str]], beam: int) -> tuple[list[list[int]], float]:
    """Every batch's ids in order, and the seconds they took after one untimed batch."""
    run(batches[0], beam)
    start = time.perf_counter()
    ids = [row for lines in batches for row in run(lines, beam)[0]]
    return ids, time.perf_counter() - start


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="opus-mt", choices=sorted(SHAPES))
    ap.add_argument("--train-steps", type=int, default=0, help="full-batch steps on 64 short pairs (0: random)")
    ap.add_argument("--sentences", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="time every row this many times, in turn; keep each "
                                                          "row's fastest")
    ap.add_argument("--searches", default="greedy,beam5", help=f"of {','.join(SEARCHES)}")
    ap.add_argument("--hf-precisions", default=",".join(HF_PRECISIONS), help=f"of {','.join(HF_PRECISIONS)}")
    ap.add_argument("--any2seq-precisions", default=",".join(ANY2SEQ_PRECISIONS),
                    help=f"of {','.join(ANY2SEQ_PRECISIONS)}")
    ap.add_argument("--workdir", type=Path, default=HERE / ".work" / "marian")
    ap.add_argument("--out", type=Path, help="the result JSON (default benchmarks/results/<date>-<HHMM>-<host>-"
                                             "marian.json)")
    args = ap.parse_args(argv)
    for flag, allowed in (("searches", SEARCHES), ("hf_precisions", HF_PRECISIONS),
                          ("any2seq_precisions", ANY2SEQ_PRECISIONS)):
        bad = [v for v in getattr(args, flag).split(",") if v not in allowed]
        if bad:
            ap.error(f"--{flag.replace('_', '-')}: {bad[0]!r} is not one of {', '.join(allowed)}")
    if "fp32" not in args.hf_precisions.split(","):
        ap.error("--hf-precisions: fp32 is the reference the outputs are compared with; keep it")
    if args.rounds < 1:
        ap.error(f"--rounds: {args.rounds}; give 1 or more")
    return args


def measure(args, hf_dir: Path, imported: Path, batches: list[list[str]]) -> list[dict]:
    """One row per system, precision and search, HF fp32 first: the reference for "same". Every
    system is loaded once; each round then times every row in turn, and a row keeps its fastest
    round, so a stretch of slow machine (this VM's speed drifts by a third) slows all rows alike."""
    systems = [("hf", p, lambda p=p: hf_system(hf_dir, p, args.max_len)) for p in args.hf_precisions.split(",")]
    systems.sort(key=lambda s: s[1] != "fp32")
    systems += [("any2seq", p, lambda p=p: any2seq_system(imported, p, args.max_len))
                for p in args.any2seq_precisions.split(",")]
    n = sum(map(len, batches))
    loaded = []
    for system, asked, make in systems:
        try:
            run, precision = make()
            loaded.append((system, precision, run, None))
        except Exception as e:  # noqa: BLE001 - a system that cannot load is a row that says why
            loaded.append((system, asked, None, e))
    best: dict[tuple, tuple[float, list]] = {}  # (system, precision, search) -> (seconds, ids)
    errors: dict[tuple, str] = {}
    for r in range(args.rounds):
        for system, precision, run, error in loaded:
            for search in args.searches.split(","):
                key = (system, precision, search)
                if key in errors:
                    continue
                try:
                    if run is None:
                        raise error
                    ids, seconds = timed(run, batches, SEARCHES[search])
                except Exception as e:  # noqa: BLE001 - e.g. bf16 kernels this CPU lacks
                    errors[key] = f"{e.__class__.__name__}: {e}".splitlines()[0][:200]
                    print(f"{system:8} {precision:22} {search:7} failed: {errors[key]}", file=sys.stderr)
                    continue
                if key not in best or seconds < best[key][0]:
                    best[key] = (seconds, ids)
                print(f"round {r + 1} {system:8} {precision:22} {search:7} {n / seconds:8.2f} sent/s", file=sys.stderr)
    rows, reference = [], {}
    for system, precision, _, _ in loaded:
        for search in args.searches.split(","):
            key = (system, precision, search)
            row = {"system": system, "precision": precision, "search": search, "sentences": n}
            if key in errors:
                rows.append({**row, "error": errors[key]})
                continue
            seconds, ids = best[key]
            tokens = sum(map(len, ids))
            if (system, precision) == ("hf", "fp32"):
                reference[search] = ids
            rows.append({**row, "seconds": round(seconds, 3), "sent_per_s": round(n / seconds, 2),
                         "tokens_per_s": round(tokens / seconds, 1), "mean_out_len": round(tokens / n, 2),
                         "same_as_hf_fp32": sum(a == b for a, b in zip(ids, reference.get(search, [])))})
    return rows


def best_rows(rows: list[dict]) -> dict:
    """Per search: each system's fastest row, and any2seq's speed over HF's, each at its best and fp32 to fp32."""
    out = {}
    for search in dict.fromkeys(r["search"] for r in rows):
        ok = [r for r in rows if r["search"] == search and "error" not in r]
        best = {s: max((r for r in ok if r["system"] == s), key=lambda r: r["sent_per_s"], default=None)
                for s in ("hf", "any2seq")}
        fp32 = {s: next((r for r in ok if r["system"] == s and r["precision"] == "fp32"), None)
                for s in ("hf", "any2seq")}
        ratio = {which: round(pair["any2seq"]["sent_per_s"] / pair["hf"]["sent_per_s"], 2)
                 for which, pair in (("best", best), ("fp32", fp32)) if pair["any2seq"] and pair["hf"]}
        out[search] = {f"{s}_best": best[s] and best[s]["precision"] for s in ("hf", "any2seq")}
        out[search]["any2seq_over_hf"] = ratio
    return out


def table(rows: list[dict], best: dict) -> str:
    head = "| system | precision | search | sent/s | tokens/s | mean out len | same as HF fp32 |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['system']} | {r['precision']} | {r['search']} | failed: {r['error']} | | | |")
            continue
        lines.append(f"| {r['system']} | {r['precision']} | {r['search']} | {r['sent_per_s']} | {r['tokens_per_s']} "
                     f"| {r['mean_out_len']} | {r['same_as_hf_fp32']}/{r['sentences']} |")
    for search, b in best.items():
        ratio = b["any2seq_over_hf"]
        lines.append(f"\n{search}: any2seq ({b['any2seq_best']}) {ratio.get('best')}x HF ({b['hf_best']}) each at "
                     f"its best; fp32 to fp32 {ratio.get('fp32')}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    started = datetime.now(timezone.utc)
    hf_dir, imported = model_dirs(args.workdir, args.shape, args.train_steps)
    from transformers import MarianTokenizer

    lines = read_multi30k("test_2016_flickr", "de")[: args.sentences]
    lengths = [len(ids) for ids in MarianTokenizer.from_pretrained(hf_dir)(lines)["input_ids"]]
    lines = [lines[i] for i in sorted(range(len(lines)), key=lambda i: (-lengths[i], i))]
    batches = [lines[k: k + args.batch_size] for k in range(0, len(lines), args.batch_size)]
    rows = measure(args, hf_dir, imported, batches)
    best = best_rows(rows)
    print(table(rows, best))
    import transformers

    import any2seq

    result = {"started": started.isoformat(timespec="seconds"), "cpu": cpu_name(), "threads": args.threads,
              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "out"},
              "shape": asdict(SHAPES[args.shape]), "model_dir": str(hf_dir),
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "any2seq": any2seq.__version__, "python": platform.python_version()},
              "rows": rows, "best": best}
    out = args.out or HERE / "results" / f"{started:%Y-%m-%d-%H%M}-{platform.node()}-marian.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
