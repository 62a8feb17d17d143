"""The any2seq benchmark: the same Multi30k de->en work for any2seq and its peers, one table.

    python benchmarks/run.py [--quick] [--systems any2seq,any2seq-bf16,torch,hf,hf-bf16,ct2,ct2-hf,onmt,joeynmt]
                             [--threads N] [--device auto|cpu|cuda] [--steps N] [--sentences N]
                             [--decode-rounds N] [--decode-only]

(``make bench`` / ``make bench-quick`` build the peer venv first and run this.) See
benchmarks/README.md for what is measured and how.

1. prepare: one joint sentencepiece BPE model (any2seq's trainer, the recipe's settings) and the
   training batches (any2seq's ``BatchStream``, ~4k padded tokens each) that every system trains on;
   the first N test_2016_flickr sentences to decode.
2. probe: ``torch.matmul`` of 2048x2048 fp32 matrices on all threads -- the machine's peak.
3. systems: each in its own process (main venv or .bench-venv), writing a JSON result; then
   ``--decode-rounds`` more decoding passes of every system that keeps its model, in turn.
4. merge: BLEU (sacreBLEU) of every decode, GFLOP/s, the median pass's sent/s, any2seq's speed-up
   over each system (the median over the rounds); each system's fp32 row, its best precision and
   its best decoding configuration, and any2seq's speed-up over each peer on each footing
   (best.py); one JSON in benchmarks/results/, markdown tables on stdout and a PNG bar chart.
5. scaling (benchmarks/scaling.py): decode time vs output length with and without KV cache, and
   train tok/s vs batch tokens and model width.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import best  # noqa: E402  (benchmarks/best.py)
from any2seq.precision import cpu_name  # noqa: E402  (the driver runs in the main venv)

# name -> (script, venv, the training system whose model it decodes, or None)
SYSTEMS = {
    "any2seq": ("any2seq_sys.py", "main", None),
    "any2seq-bf16": ("any2seq_sys.py", "main", None),
    "any2seq-w2": ("any2seq_sys.py", "main", "any2seq"),
    "any2seq-bf16-w2": ("any2seq_sys.py", "main", "any2seq-bf16"),
    "torch": ("torch_plain.py", "main", None),
    "hf": ("hf_marian.py", "peer", None),
    "hf-bf16": ("hf_marian.py", "peer", None),
    "hf-w2": ("hf_marian.py", "peer", "hf"),
    "hf-bf16-w2": ("hf_marian.py", "peer", "hf-bf16"),
    "ct2": ("ct2_any2seq.py", "main", "any2seq"),
    "ct2-w2": ("ct2_any2seq.py", "main", "any2seq"),
    "ct2-hf": ("ct2_marian.py", "peer", "hf"),
    "ct2-hf-w2": ("ct2_marian.py", "peer", "hf"),
    "onmt": ("onmt_sys.py", "peer", None),
    "joeynmt": ("joeynmt_sys.py", "peer", None),
}
# Systems that are another system's script with settings changed: name -> spec["variant"]. The rows
# of one script are one system in the best-of tables (best.py): "precision" bf16 trains under bf16
# autocast and decodes with bf16 weights, each system as its users would; the -w2 rows decode two
# batches at a time, one thread each (any2seq's translate(workers=2), CTranslate2's inter_threads=2,
# the benchmark's thread pool around HF generate).
VARIANTS = {"any2seq-bf16": {"precision": "bf16"}, "any2seq-w2": {"workers": 2},
            "any2seq-bf16-w2": {"precision": "bf16", "workers": 2}, "hf-bf16": {"precision": "bf16"},
            "hf-w2": {"workers": 2}, "hf-bf16-w2": {"precision": "bf16", "workers": 2},
            "ct2-w2": {"workers": 2}, "ct2-hf-w2": {"workers": 2}}
LABELS = {"any2seq": "any2seq", "any2seq-bf16": "any2seq, bf16 autocast", "any2seq-w2": "any2seq, 2 workers",
          "any2seq-bf16-w2": "any2seq, bf16, 2 workers", "torch": "plain PyTorch (no KV cache)", "hf": "HF Marian",
          "hf-bf16": "HF Marian, bf16 autocast", "hf-w2": "HF Marian, 2 workers",
          "hf-bf16-w2": "HF Marian, bf16, 2 workers", "ct2": "CTranslate2 (any2seq export)",
          "ct2-w2": "CTranslate2 (any2seq export), 2 workers",
          "ct2-hf": "CTranslate2 (HF Marian)", "ct2-hf-w2": "CTranslate2 (HF Marian), 2 workers",
          "onmt": "OpenNMT-py", "joeynmt": "JoeyNMT"}
SHORT = {"any2seq": "any2seq", "any2seq-bf16": "any2seq\nbf16", "any2seq-w2": "any2seq\nx2",
         "any2seq-bf16-w2": "any2seq\nbf16 x2", "torch": "PyTorch\n(no cache)", "hf": "HF Marian",
         "hf-bf16": "HF Marian\nbf16", "hf-w2": "HF Marian\nx2", "hf-bf16-w2": "HF Marian\nbf16 x2",
         "ct2": "CT2\n(any2seq)", "ct2-w2": "CT2 (any2seq)\nx2", "ct2-hf": "CT2\n(HF)", "ct2-hf-w2": "CT2 (HF)\nx2",
         "onmt": "OpenNMT-py", "joeynmt": "JoeyNMT"}
DEFAULT_SYSTEMS = ",".join(SYSTEMS)
DECODE_ONLY = ["any2seq", "any2seq-bf16", "hf", "hf-bf16", "onmt"]  # trainers that keep their model in the workdir


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few steps and 64 sentences: the whole run in under 3 minutes")
    ap.add_argument("--systems", default=None, help=f"comma-separated, of: {DEFAULT_SYSTEMS} (default: all; quick: "
                    "all but the two-worker rows, which need more than its two batches)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch/CTranslate2 threads")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="for the torch-based systems (auto: cuda when there is one); CTranslate2 runs on CPU")
    ap.add_argument("--steps", type=int, default=None, help="training steps for every system "
                    "(default 500; quick: 6 on CPU, 300 on CUDA)")
    ap.add_argument("--timing-warmup", type=int, default=None, help="steps left out of tok/s (default: steps/10, >= 2)")
    ap.add_argument("--sentences", type=int, default=None, help="test sentences to decode (default 1000; quick 64: two batches)")
    ap.add_argument("--batch-size", type=int, default=32, help="sentences per decoding batch")
    ap.add_argument("--max-len", type=int, default=None, help="cap on output tokens, under a*source+b = 1.5*src+10 "
                    "(default 256; quick 20: barely trained models run on to the cap, and the cache-less loop's "
                    "beam search over long outputs would take most of the quick run)")
    ap.add_argument("--batch-tokens", type=int, default=4000, help="padded tokens per training batch")
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=8000, help="joint BPE vocabulary")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--lr-warmup", type=int, default=None, help="inverse_sqrt warmup steps (default min(400, steps/3))")
    ap.add_argument("--data", type=Path, default=None, help="folder with {train,val,test_2016_flickr}.{de,en}.gz "
                    "(default: data/multi30k, else ../shared/data/multi30k)")
    ap.add_argument("--peer-python", type=Path, default=REPO / ".bench-venv" / "bin" / "python",
                    help="the python of the peer venv (make bench-venv)")
    ap.add_argument("--workdir", type=Path, default=HERE / ".work", help="models, batches, hypotheses")
    ap.add_argument("--results", type=Path, default=HERE / "results", help="where the JSON and PNGs go")
    ap.add_argument("--name", default=None, help="result file stem (default <date>-<HHMM>-<host>, the start time: a "
                    "new run does not overwrite the results committed from an earlier one)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the scaling part")
    ap.add_argument("--scaling", choices=["micro", "quick", "full"], default=None,
                    help="the scaling part's size (default: quick with --quick, else full)")
    ap.add_argument("--no-plot", action="store_true", help="no PNG charts")
    ap.add_argument("--timeout", type=int, default=None, help="seconds allowed to each system process")
    ap.add_argument("--decode-rounds", type=int, default=None,
                    help="decoding passes after the first, every system that keeps its model in turn (the order "
                         "reversed each round), so that speed ratios are taken at one moment; the table gives "
                         "each system's median (default 2; quick 0)")
    ap.add_argument("--decode-only", action="store_true",
                    help="time decoding again with the models the last run left in --workdir (its spec: steps, "
                         "sentences, model), without training: for decoder changes; " + ", ".join(DECODE_ONLY)
                         + " and the CTranslate2 engines")
    args = ap.parse_args(argv)
    if args.systems is None:
        args.systems = ",".join(n for n in SYSTEMS if not (args.quick and VARIANTS.get(n, {}).get("workers")))
    unknown = [s for s in args.systems.split(",") if s and s not in SYSTEMS]
    if unknown:
        ap.error(f"--systems: unknown {', '.join(unknown)}; choose from {DEFAULT_SYSTEMS}")
    if args.decode_rounds is not None and args.decode_rounds < 0:
        ap.error(f"--decode-rounds: must not be negative, got {args.decode_rounds}")
    return args


def resolve(args) -> dict:
    """The run's settings: quick and full defaults, the device."""
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = args.steps or ((300 if device == "cuda" else 6) if args.quick else 500)
    warm = args.timing_warmup if args.timing_warmup is not None else max(2, steps // 10)
    sentences = args.sentences or (64 if args.quick else 1000)
    lr_warmup = args.lr_warmup or max(1, min(400, steps // 3))
    max_len = args.max_len or (20 if args.quick else 256)
    rounds = args.decode_rounds if args.decode_rounds is not None else (0 if args.quick else 2)
    return {"device": device, "steps": steps, "max_len": max_len, "timing_warmup": min(warm, max(steps - 2, 0)),
            "sentences": sentences, "lr_warmup": lr_warmup, "decode_rounds": rounds}


def data_root(args) -> Path:
    candidates = [args.data] if args.data else [REPO / "data" / "multi30k", REPO.parent / "shared" / "data" / "multi30k"]
    for root in candidates:
        if root and (root / "train.de.gz").is_file():
            return root.resolve()
    raise SystemExit(f"no Multi30k data in {', '.join(map(str, candidates))}: pass --data")


# --- 1. prepare --------------------------------------------------------------------------------

def prepare(args, run: dict, workdir: Path) -> dict:
    """The shared tokenizer, training batches and test sentences; returns the spec every system reads."""
    import gzip

    import numpy as np

    from any2seq.data import BatchStream, encode_cached, train_tokenizer
    from any2seq.data.tokenizer import Tokenizer

    root = data_root(args)
    prep = workdir / f"prep-bpe{args.vocab}"
    prep.mkdir(parents=True, exist_ok=True)
    spm = prep / "spm.model"
    train_files = [root / "train.de.gz", root / "train.en.gz"]
    if not spm.is_file():  # as `any2seq train` trains a joint tokenizer: seed 1, coverage 1.0
        train_tokenizer(train_files, spm, args.vocab, "bpe", 1.0, seed=1)
    tok = Tokenizer.load(spm)
    src, tgt = (encode_cached(p, tok, workdir / "cache") for p in train_files)
    max_len = 128
    stream = BatchStream(src, tgt, args.batch_tokens, 1, (0, 0), max_len)
    arrays, stats = {"n_steps": np.array(run["steps"])}, []
    for i in range(run["steps"]):
        b = next(stream)
        arrays.update({f"src_{i}": b.src.numpy().astype(np.int32), f"tgt_{i}": b.tgt.numpy().astype(np.int32),
                       f"src_len_{i}": b.src_lengths.numpy(), f"tgt_len_{i}": b.tgt_lengths.numpy()})
        stats.append((b.src.size(0), int(b.tgt_lengths.sum()), b.src.numel(), b.tgt.numel()))
    batches = workdir / "batches.npz"
    np.savez(batches, **arrays)

    def head(path: Path, n: int) -> list[str]:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [line.rstrip("\n") for _, line in zip(range(n), f)]

    test_src, test_ref = head(root / "test_2016_flickr.de.gz", run["sentences"]), head(root / "test_2016_flickr.en.gz",
                                                                                       run["sentences"])
    (workdir / "test.de").write_text("".join(s + "\n" for s in test_src), encoding="utf-8")
    (workdir / "test.en").write_text("".join(s + "\n" for s in test_ref), encoding="utf-8")
    rows = np.array(stats)
    return {
        "workdir": str(workdir), "data_root": str(root), "spm": str(spm), "vocab_size": tok.vocab_size,
        "batches": str(batches), "max_train_len": max_len,
        "batch_stats": {"mean_sentences": float(rows[:, 0].mean()), "mean_target_tokens": float(rows[:, 1].mean()),
                        "mean_padded_src": float(rows[:, 2].mean()), "mean_padded_tgt": float(rows[:, 3].mean())},
        "test_src": str(workdir / "test.de"), "test_ref": str(workdir / "test.en"),
        "test_src_lengths": [len(ids) for ids in tok.encode(test_src)],
        "model": {"d_model": args.d_model, "layers": args.layers, "heads": args.heads, "ff": args.ff, "dropout": 0.1},
        "train": {"steps": run["steps"], "timing_warmup": run["timing_warmup"], "batch_tokens": args.batch_tokens,
                  "lr": args.lr, "lr_warmup": run["lr_warmup"], "label_smoothing": 0.1, "clip": 1.0, "seed": 1,
                  "betas": [0.9, 0.98], "eps": 1e-9},
        "decode": {"batch_size": args.batch_size, "beam": 5, "max_len_a": 1.5, "max_len_b": 10,
                   "max_len": run["max_len"]},
        "threads": args.threads, "device": run["device"],
    }


# --- 2. probe ----------------------------------------------------------------------------------

def matmul_probe(threads: int, device: str, n: int = 2048, seconds: float = 1.5, dtype: str = "float32") -> dict:
    """Achieved GFLOP/s of torch.matmul (n x n, fp32 or bf16) on ``threads`` threads: the peak to compare with."""
    import torch

    torch.set_num_threads(threads)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    n = probe_size(n, device, getattr(torch, dtype), seconds / 4)
    a, b = (torch.randn(n, n, device=device, dtype=getattr(torch, dtype)) for _ in range(2))
    for _ in range(2):
        a @ b
    sync()
    reps, start = 0, time.perf_counter()
    while True:
        a @ b
        reps += 1
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and reps >= 3:
            break
    return {"n": n, "dtype": dtype, "threads": threads, "device": device, "reps": reps,
            "gflop_s": 2 * n ** 3 * reps / elapsed / 1e9}


def probe_size(n: int, device: str, dtype, seconds: float) -> int:
    """``n``, or a smaller power of two where one n x n product would take more than ``seconds``: a CPU
    without native bf16 (AVX2 only) multiplies bf16 ~100x slower than float32, and a 2048 product
    there takes long enough to stall a quick run for minutes."""
    import torch

    size = 256
    while size < n:
        a = torch.randn(size, size, device=device, dtype=dtype)
        start = time.perf_counter()
        a @ a
        if (time.perf_counter() - start) * 8 > seconds:  # the next size is 8x the work
            return size
        size *= 2
    return n


# --- 3. systems --------------------------------------------------------------------------------

def peer_status(peer_python: Path) -> dict:
    """What the peer venv's setup recorded: {peer: {"ok": bool, "note": str}}."""
    path = peer_python.parent.parent / "peers.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def run_system(name: str, spec: dict, spec_path: Path, args, workdir: Path, tag: str = "") -> dict:
    """Run one system's script in its venv; its result (``tag`` names a repeated run's files)."""
    script, venv, _ = SYSTEMS[name]
    python = Path(sys.executable) if venv == "main" else args.peer_python
    if not python.is_file():
        return {"system": name, "ok": False, "error": f"skipped: no peer venv at {python.parent.parent} "
                                                      "(make bench-venv)"}
    out = workdir / "out" / f"{name}{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"]),
           "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    if spec["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # any2seq trains on CUDA whenever it sees one
    if venv == "main":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH", "")]))
    log = workdir / "out" / f"{name}{tag}.log"
    print(f"bench: {name}{tag} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        try:
            proc = subprocess.run([str(python), str(HERE / "systems" / script), str(spec_path), str(out)],
                                  stdout=f, stderr=subprocess.STDOUT, env=env, cwd=str(REPO), timeout=args.timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    elapsed = time.perf_counter() - start
    if out.is_file():
        result = json.loads(out.read_text(encoding="utf-8"))
    else:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:] or ["no output"]
        result = {"system": name, "ok": False, "error": f"exit {code}: {tail[0][:300]}"}
    result["log"] = str(log)
    state = "ok" if result.get("ok") else f"FAILED ({result.get('error')})"
    print(f"bench: {name}{tag} {state} in {elapsed:.0f}s", file=sys.stderr, flush=True)
    return result


def system_spec(name: str, spec: dict, results: dict, decode_only: bool) -> dict:
    """The spec one system's script reads: the run's, plus its name, variant and source model."""
    sys_spec = dict(spec, system=name, variant=VARIANTS.get(name, {}), decode_only=decode_only)
    if SYSTEMS[name][2]:
        sys_spec["source_model"] = results[SYSTEMS[name][2]]["model_dir"]
    return sys_spec


def decode_again(order: list[str], results: dict, spec: dict, args, workdir: Path, rounds: int) -> None:
    """``rounds`` more decoding passes of every system that keeps its model, one system after
    another (the order reversed every other round), each in a fresh process as the first pass.
    A shared VM's speed drifts by tens of percent over minutes; passes taken side by side give
    ratios that hold. Adds each mode's ``round_seconds`` (the first pass, then these; None where
    a pass failed) to ``results``, in place."""
    names = [n for n in order if results[n].get("ok") and results[n].get("decode")
             and (n in DECODE_ONLY or SYSTEMS[n][2])]
    for decode in (d for n in order for d in (results[n].get("decode") or {}).values()):
        decode["round_seconds"] = [decode.get("seconds")]
    for r in range(1, rounds + 1):
        for name in names if r % 2 else names[::-1]:
            sys_spec, path = system_spec(name, spec, results, True), workdir / f"spec.{name}.again.json"
            path.write_text(json.dumps(sys_spec, indent=1), encoding="utf-8")
            again = run_system(name, sys_spec, path, args, workdir, tag=f".round{r}")
            for mode, decode in results[name]["decode"].items():
                decode["round_seconds"].append(((again.get("decode") or {}).get(mode) or {}).get("seconds"))


def decode_ratios(results: dict, order: list[str]) -> list[dict]:
    """Decoding speed of each any2seq row over each other system's, per mode: the median (and
    range) over the rounds both decoded in, repeated rounds only when there are any (they were
    taken side by side; the first passes, minutes apart, were not)."""
    ours = [n for n in order if n.startswith("any2seq") and results[n].get("ok")]
    peers = [n for n in order if not n.startswith("any2seq") and results[n].get("ok") and results[n].get("decode")]
    def passes(name: str, mode: str) -> list:
        decode = results[name]["decode"][mode]
        return decode.get("round_seconds") or [decode.get("seconds")]

    rows = []
    for a in ours:
        for mode in ("greedy", "beam5"):
            row, sa = {"system": a, "mode": mode, "over": {}}, passes(a, mode)
            for b in peers:
                sb = passes(b, mode)
                side_by_side = [(x, y) for x, y in zip(sa[1:], sb[1:]) if x and y]
                pairs = side_by_side or [(x, y) for x, y in zip(sa[:1], sb[:1]) if x and y]
                ratios = [y / x for x, y in pairs]  # peer seconds / ours = our speed-up
                if ratios:
                    row["over"][b] = {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
                                      "max": round(max(ratios), 3), "rounds": len(ratios)}
            rows.append(row)
    return rows


def ratio_table(rows: list[dict], order: list[str]) -> str:
    peers = [n for n in order if any(n in row["over"] for row in rows)]
    if not rows or not peers:
        return ""
    lines = ["| any2seq row | mode | " + " | ".join(LABELS[p] for p in peers) + " |",
             "|---|---|" + "---|" * len(peers)]
    for row in rows:
        cells = []
        for p in peers:
            r = row["over"].get(p)
            cells.append("—" if r is None else f"{r['median']:.2f}x" + (
                f" ({r['min']:.2f}-{r['max']:.2f}, {r['rounds']} rounds)" if r["rounds"] > 1 else ""))
        mode = "greedy" if row["mode"] == "greedy" else "beam 5"
        lines.append(f"| {LABELS[row['system']]} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- 4. merge ----------------------------------------------------------------------------------

def score(result: dict, spec: dict, probe: dict) -> None:
    """Add BLEU, sent/s and GFLOP/s to a system's result, in place."""
    import sacrebleu
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spec["spm"])
    refs = Path(spec["test_ref"]).read_text(encoding="utf-8").splitlines()
    for mode, d in result.get("decode", {}).items():
        hyps = Path(d["hyps"]).read_text(encoding="utf-8").splitlines()
        hyps += [""] * (len(refs) - len(hyps))
        metric = sacrebleu.BLEU()
        d["bleu"] = round(metric.corpus_score(hyps[: len(refs)], [refs]).score, 2)
        d["bleu_signature"] = str(metric.get_signature())
        passes = [s for s in d.get("round_seconds") or [d.get("seconds")] if s]  # the median pass
        d["sent_s"] = d["sentences"] / statistics.median(passes) if passes else None
        d["passes"] = len(passes)
        # Untrained models differ most in how long they go on: sent/s means little without this.
        d["mean_out_tokens"] = round(sum(len(p) for p in sp.encode(hyps)) / max(len(hyps), 1), 2)
    train = result.get("train")
    if train and train.get("tok_s") and train.get("params"):
        train["gflop_s"] = 6 * train["params"] * train["tok_s"] / 1e9  # forward + backward ~ 6 FLOPs/param/token
        train["share_of_peak"] = train["gflop_s"] / probe["gflop_s"]
        train["probe_dtype"] = probe["dtype"]


def fmt(value, digits=0, suffix="") -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{suffix}"


def table(results: dict, order: list[str]) -> str:
    head = ("| system | train tok/s | greedy sent/s | beam-5 sent/s | out tokens greedy/beam | BLEU greedy "
            "| BLEU beam-5 | peak RSS MiB | train GFLOP/s | % of matmul peak | note |")
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for name in order:
        r = results[name]
        train, dec = r.get("train") or {}, r.get("decode") or {}
        g, b = dec.get("greedy") or {}, dec.get("beam5") or {}
        note = r.get("note", "") if r.get("ok") else f"not run: {r.get('error', '?')}"
        peak = r.get("peak_rss_mb") if r.get("ok") else None
        if r.get("cuda_peak_mb") and r.get("ok"):
            note = (note + "; " if note else "") + f"CUDA peak {r['cuda_peak_mb']:,.0f} MiB"
        lengths = f"{fmt(g.get('mean_out_tokens'), 1)} / {fmt(b.get('mean_out_tokens'), 1)}" if g or b else "—"
        lines.append(f"| {LABELS[name]} | {fmt(train.get('tok_s'))} | {fmt(g.get('sent_s'), 1)} | {fmt(b.get('sent_s'), 1)} "
                     f"| {lengths} | {fmt(g.get('bleu'), 2)} | {fmt(b.get('bleu'), 2)} | {fmt(peak)} | {fmt(train.get('gflop_s'), 1)} "
                     f"| {fmt(100 * train['share_of_peak'] if train.get('share_of_peak') else None, 1, '%')} "
                     f"| {note.replace('|', '/')} |")
    return "\n".join(lines)


def chart(results: dict, order: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("train tok/s", lambda r: (r.get("train") or {}).get("tok_s")),
              ("greedy sent/s", lambda r: ((r.get("decode") or {}).get("greedy") or {}).get("sent_s")),
              ("beam-5 sent/s", lambda r: ((r.get("decode") or {}).get("beam5") or {}).get("sent_s")),
              ("BLEU (beam 5)", lambda r: ((r.get("decode") or {}).get("beam5") or {}).get("bleu")),
              ("peak RSS (MiB)", lambda r: r.get("peak_rss_mb")),
              ("train: % of matmul peak", lambda r: 100 * ((r.get("train") or {}).get("share_of_peak") or 0) or None)]
    names = [n for n in order if results[n].get("ok")]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    colors = plt.cm.tab10.colors
    for ax, (label, get) in zip(axes.flat, panels):
        values = [get(results[n]) for n in names]
        ax.bar(range(len(names)), [v or 0 for v in values], color=[colors[i % 10] for i in range(len(names))])
        for i, v in enumerate(values):
            text = "n/a" if v is None else f"{v:,.2f}" if v < 10 else f"{v:,.1f}" if v < 100 else f"{v:,.0f}"
            ax.text(i, v or 0, text, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(names)), [SHORT[n] for n in names], fontsize=7)
        ax.set_title(label)
        ax.margins(y=0.15)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main --------------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    run = resolve(args)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir / "spec.json"
    started, start_time = time.perf_counter(), dt.datetime.now()
    if args.decode_only:
        if not spec_path.is_file():
            print(f"bench: --decode-only: no {spec_path} (run the benchmark once first)", file=sys.stderr)
            return 2
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        run.update(device=spec["device"], steps=spec["train"]["steps"], timing_warmup=spec["train"]["timing_warmup"],
                   sentences=len(spec["test_src_lengths"]))
        args.no_scaling, args.threads = True, spec["threads"]
        print(f"bench: decoding again with the models in {workdir / 'models'} ({run['steps']} steps)",
              file=sys.stderr, flush=True)
    else:
        for stale in ("models", "hyps", "out"):
            shutil.rmtree(workdir / stale, ignore_errors=True)
        print(f"bench: preparing data ({run['steps']} steps, {run['sentences']} sentences, device {run['device']}, "
              f"{args.threads} threads)", file=sys.stderr, flush=True)
        spec = prepare(args, run, workdir)
        spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    order = [s for s in args.systems.split(",") if s]
    order = sorted(dict.fromkeys(order), key=list(SYSTEMS).index)  # trainers before the engines that need them
    probe = matmul_probe(args.threads, "cpu")
    probes = {"cpu": probe}
    if run["device"] == "cuda":
        probes["cuda"] = matmul_probe(args.threads, "cuda", n=8192, seconds=1.0)
        probe = probes["cuda"]
    if any(VARIANTS.get(s, {}).get("precision") == "bf16" for s in order):  # bf16 rows: their own peak
        probes[f"{run['device']}-bf16"] = matmul_probe(args.threads, run["device"], n=probe["n"], dtype="bfloat16")
    for p in probes.values():
        print(f"bench: matmul probe {p['gflop_s']:.1f} GFLOP/s ({p['device']}, {p['dtype']})", file=sys.stderr,
              flush=True)

    peers = peer_status(args.peer_python)
    results: dict = {}
    skipped: set[str] = set()  # main-venv systems --decode-only cannot run: not failures
    for name in order:
        needs = SYSTEMS[name][2]
        status = peers.get(name)
        if needs and not (results.get(needs) or {}).get("ok"):
            results[name] = {"system": name, "ok": False, "error": f"needs the {needs} system's model "
                                                                   f"(add {needs} to --systems)"}
            continue
        if status is not None and not status.get("ok"):
            results[name] = {"system": name, "ok": False, "error": f"skipped: {status.get('note', 'not installed')}"}
            continue
        if args.decode_only and not needs:
            why = ("it keeps no model" if name not in DECODE_ONLY
                   else None if (workdir / "models" / name).is_dir() else f"no model in {workdir / 'models' / name}")
            if why:
                results[name] = {"system": name, "ok": False, "error": f"skipped: --decode-only, {why}"}
                skipped.add(name)
                continue
        sys_spec = system_spec(name, spec, results, args.decode_only)
        if needs or name in VARIANTS or args.decode_only:
            path = workdir / f"spec.{name}.json"
            path.write_text(json.dumps(sys_spec, indent=1), encoding="utf-8")
        else:
            path = spec_path
        results[name] = run_system(name, sys_spec, path, args, workdir)
    decode_again(order, results, spec, args, workdir, run["decode_rounds"])
    for name in order:
        bf16 = VARIANTS.get(name, {}).get("precision") == "bf16"
        score(results[name], spec, probes[f"{run['device']}-bf16"] if bf16 else probe)
    ratios = decode_ratios(results, order)
    summary = best.summarize(results, order, SYSTEMS, VARIANTS)
    speedups = best.speedups(summary, ratios)

    scaling = None
    if not args.no_scaling:
        from scaling import run_scaling

        scaling = run_scaling(spec, args.scaling or ("quick" if args.quick else "full"), workdir)

    host = socket.gethostname().split(".")[0]
    stem = args.name or f"{start_time:%Y-%m-%d-%H%M}-{host}"
    args.results.mkdir(parents=True, exist_ok=True)
    import torch

    meta = {"date": dt.datetime.now().isoformat(timespec="seconds"), "host": host, "platform": platform.platform(),
            "cpu": cpu_name(), "cpus": os.cpu_count(), "threads": args.threads, "device": run["device"],
            "gpu": torch.cuda.get_device_name(0) if run["device"] == "cuda" else None,
            "quick": args.quick, "steps": run["steps"], "timing_warmup": run["timing_warmup"],
            "sentences": run["sentences"], "decode_only": args.decode_only, "decode_rounds": run["decode_rounds"],
            "torch": torch.__version__,
            "commit": _commit(),
            "load_avg": os.getloadavg(),
            "wall_s": round(time.perf_counter() - started, 1), "command": " ".join(sys.argv)}
    report = {"meta": meta, "spec": {k: v for k, v in spec.items() if k != "test_src_lengths"}, "probe": probes,
              "systems": results, "decode_ratios": ratios, "best": summary, "speedups": speedups,
              "scaling": scaling}
    json_path = args.results / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md = table(results, order)
    rt = ratio_table(ratios, order)
    rounds, chip = run["decode_rounds"], meta["gpu"] or meta["cpu"]  # every heading names the chip it ran on
    how = (f"the median of {rounds} rounds that decoded every system in turn" if rounds
           else "one pass each, minutes apart: --decode-rounds N for ratios taken side by side")
    if rt:
        md += (f"\n\nDecoding speed, any2seq over each other system ({how}; range in brackets), on {chip}:"
               f"\n\n{rt}")
    md += "\n\n" + best.report_section(summary, speedups, LABELS, chip, how)
    m = spec["model"]
    title = (f"any2seq benchmark {meta['date']} on {host} ({chip}): Multi30k de-en, d{m['d_model']} "
             f"{m['layers']}+{m['layers']} layers, {run['steps']} steps, {run['sentences']} sentences, "
             f"{run['device']}, {args.threads} threads"
             + (" (decoding only, models of the last run)" if args.decode_only else ""))
    (args.results / f"{stem}.md").write_text(f"{title}\n\n{md}\n", encoding="utf-8")
    if not args.no_plot:
        chart(results, order, args.results / f"{stem}.png", title)
        if scaling:
            from scaling import plot_scaling

            plot_scaling(scaling, args.results / f"{stem}-scaling.png", title)
    print(f"\n{title}\n")
    print(md)
    print(f"\nmatmul probe: {probe['gflop_s']:.1f} GFLOP/s ({probe['device']}, fp32 {probe['n']}^2, "
          f"{args.threads} threads); train GFLOP/s ~ 6 x params x target tok/s")
    if scaling:
        from scaling import scaling_tables

        print("\n" + scaling_tables(scaling))
    print(f"\nresults: {json_path} (+ .md{', .png' if not args.no_plot else ''}); took {meta['wall_s']:.0f}s")
    return 0 if all(results[n].get("ok") for n in order if SYSTEMS[n][1] == "main" and n not in skipped) else 1


def _commit() -> str | None:
    """The checkout's commit, with "+dirty" when tracked files differ from it; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    sys.exit(main())
