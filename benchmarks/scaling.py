"""The scaling part of the benchmark (any2seq only; main venv).

* decode: greedy decoding time of a batch of test sentences vs output length, with any2seq's KV
  cache (``model.step``) and without one (the decoder re-run over the whole prefix at every step,
  only the last position projected to the vocabulary). Lengths are forced by forbidding eos.
* train: target tokens per second vs batch tokens (at the benchmark's width) and vs model width
  (d_model, ff = 4 d_model, at a fixed batch), with the peak memory of each point: each point is its
  own process, so peak RSS is that point's (and peak CUDA memory on a GPU).

``run_scaling(spec, quick, workdir, threads)`` runs it all and returns a dict for the result JSON;
``plot_scaling`` and ``scaling_tables`` show it. ``python benchmarks/scaling.py POINT.json OUT.json``
is one point (the driver's subprocess).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

QUICK = {"lengths": [16, 32, 64], "decode_batch": 8, "batch_tokens": [1000, 2000, 4000], "widths": [128, 256, 384],
         "width_batch_tokens": 1000, "steps": 3, "warmup": 1}
MICRO = {"lengths": [4, 8], "decode_batch": 4, "batch_tokens": [500], "widths": [64],
         "width_batch_tokens": 500, "steps": 3, "warmup": 1}  # the smoke test's
FULL = {"lengths": [16, 32, 64, 128, 256], "decode_batch": 32, "batch_tokens": [1000, 2000, 4000, 8000, 16000],
        "widths": [128, 256, 512, 768], "width_batch_tokens": 4000, "steps": 20, "warmup": 5}


def build_model(spec: dict, d_model: int, ff: int):
    from any2seq.config import config_from_dict
    from any2seq.seq2seq import build_model as build

    m = spec["model"]
    side = {"kind": "transformer", "d_model": d_model, "layers": m["layers"], "heads": m["heads"], "ff": ff,
            "dropout": m["dropout"]}
    cfg = config_from_dict({"model": {"encoder": side, "decoder": dict(side), "share_embeddings": True}})
    return build(cfg.model, spec["vocab_size"], spec["vocab_size"], label_smoothing=0.1)


# --- one point, in its own process ---------------------------------------------------------------

def decode_point(point: dict, spec: dict, torch, device) -> dict:
    """Seconds to greedily decode ``decode_batch`` sentences to each length, with and without cache."""
    from any2seq.data.tokenizer import Tokenizer
    from any2seq.search import greedy

    model = build_model(spec, spec["model"]["d_model"], spec["model"]["ff"]).to(device).eval()
    tok = Tokenizer.load(spec["spm"])
    lines = Path(spec["test_src"]).read_text(encoding="utf-8").splitlines()[: point["decode_batch"]]
    ids = tok.encode(lines)
    src = torch.zeros(len(ids), max(len(s) for s in ids), dtype=torch.long)
    for row, seq in enumerate(ids):
        src[row, : len(seq)] = torch.tensor(seq)
    src, lengths = src.to(device), torch.tensor([len(s) for s in ids], device=device)
    eos = model.eos
    dec = model.decoder

    def cached_step(tokens, state):
        log_probs, state = model.step(tokens, state)
        log_probs[:, eos] = float("-inf")  # never stop: the output is exactly as long as asked
        return log_probs, state

    def uncached_step(tokens, state):
        prefix = torch.cat([state["prefix"], tokens[:, None]], dim=1)
        x = dec.embed(prefix, 0)
        for layer, cross_kv in zip(dec.layers, state["source"]["cross"]):
            x, _ = layer(x, cross_kv, state["source"]["memory_mask"], None)
        log_probs = dec.proj(dec.norm(x[:, -1])).float().log_softmax(-1)
        log_probs[:, eos] = float("-inf")
        return log_probs, {**state, "prefix": prefix}

    def timed(step, length, cache: bool) -> float:
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        with torch.inference_mode():
            sync()
            start = time.perf_counter()
            state = model.encode(src, lengths)
            if not cache:
                state = {**state, "prefix": src.new_zeros(src.size(0), 0)}
            hyps = greedy(step, state, src.size(0), model.bos, eos, length)
            sync()
            seconds = time.perf_counter() - start
        assert all(len(h[0].tokens) == length for h in hyps)
        return seconds

    timed(cached_step, 4, True)  # warm-up
    timed(uncached_step, 4, False)
    rows = []
    for length in point["lengths"]:  # the better of two runs: a busy machine's hiccups count less
        with_cache = min(timed(cached_step, length, True) for _ in range(2))
        without = min(timed(uncached_step, length, False) for _ in range(2))
        rows.append({"length": length, "cache_s": round(with_cache, 4), "no_cache_s": round(without, 4),
                     "speedup": round(without / with_cache, 2) if with_cache > 0 else None})
    return {"sentences": len(ids), "rows": rows}


def train_point(point: dict, spec: dict, torch, device) -> dict:
    """Target tok/s of any2seq's model + loss + AdamW at one (batch tokens, width), and its peak memory."""
    from common import StepTimer, peak_rss_mb

    from any2seq.config import TrainConfig
    from any2seq.data import BatchStream, encode_cached
    from any2seq.data.tokenizer import Tokenizer
    from any2seq.train.optim import make_optimizer

    tok = Tokenizer.load(spec["spm"])
    root, cache = Path(spec["data_root"]), Path(spec["workdir"]) / "cache"
    src, tgt = (encode_cached(root / f"train.{lang}.gz", tok, cache) for lang in ("de", "en"))
    stream = BatchStream(src, tgt, point["batch_tokens"], 1, (0, 0), spec["max_train_len"])
    batches = [next(stream) for _ in range(point["steps"])]
    base_rss = peak_rss_mb()
    model = build_model(spec, point["d_model"], 4 * point["d_model"]).to(device).train()
    params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    opt = make_optimizer(model, TrainConfig(lr=1e-4, warmup=1))
    timer = StepTimer(device)
    for batch in batches:
        timer.step(batch.n_tokens)
        batch = batch.to(device)
        loss, n = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        (loss / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    timer.end()
    out = {**point, "params": params, **timer.summary(point["warmup"]), "peak_rss_mb": round(peak_rss_mb(), 1),
           "rss_before_model_mb": round(base_rss, 1),
           "mean_target_tokens": sum(b.n_tokens for b in batches) / len(batches)}
    if device.type == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return out


def point_main(point_path: str, out_path: str) -> None:
    from common import load_spec, setup_torch

    point = json.loads(Path(point_path).read_text(encoding="utf-8"))
    spec = load_spec(point["spec"])
    torch, device = setup_torch(spec)
    result = decode_point(point, spec, torch, device) if point["kind"] == "decode" else train_point(
        point, spec, torch, device)
    Path(out_path).write_text(json.dumps(result) + "\n", encoding="utf-8")


# --- the driver's side ---------------------------------------------------------------------------

def _run_point(point: dict, spec: dict, workdir: Path, name: str) -> dict:
    folder = workdir / "scaling"
    folder.mkdir(parents=True, exist_ok=True)
    point_path, out = folder / f"{name}.point.json", folder / f"{name}.json"
    point_path.write_text(json.dumps({**point, "spec": str(workdir / "spec.json")}), encoding="utf-8")
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "PYTHONUNBUFFERED": "1"}
    if spec["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH", "")]))
    with open(folder / f"{name}.log", "w", encoding="utf-8") as log:
        code = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(point_path), str(out)],
                              stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if out.is_file():
        return json.loads(out.read_text(encoding="utf-8"))
    tail = (folder / f"{name}.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
    return {**point, "error": f"exit {code}: {(tail or ['no output'])[0][:300]}"}


PLANS = {"micro": MICRO, "quick": QUICK, "full": FULL}


def run_scaling(spec: dict, plan_name: str, workdir: Path) -> dict:
    plan = {"name": plan_name, **PLANS[plan_name]}
    started = time.perf_counter()
    print("bench: scaling: decode length with/without KV cache ...", file=sys.stderr, flush=True)
    decode = _run_point({"kind": "decode", "lengths": plan["lengths"], "decode_batch": plan["decode_batch"]},
                        spec, workdir, "decode")
    d = spec["model"]["d_model"]
    points = [("batch", bt, d) for bt in plan["batch_tokens"]]
    points += [("width", plan["width_batch_tokens"], w) for w in plan["widths"]]
    train, done = {"batch_tokens": [], "width": []}, {}
    for axis, bt, width in points:
        if (bt, width) not in done:  # a point on both axes (the model's width at the width axis' batch) runs once
            print(f"bench: scaling: train {axis} (batch tokens {bt}, d_model {width}) ...", file=sys.stderr, flush=True)
            point = {"kind": "train", "batch_tokens": bt, "d_model": width, "steps": plan["steps"],
                     "warmup": plan["warmup"]}
            done[bt, width] = _run_point(point, spec, workdir, f"train-{bt}-{width}")
        train["batch_tokens" if axis == "batch" else "width"].append(done[bt, width])
    return {"plan": plan, "decode": decode, "train": train, "wall_s": round(time.perf_counter() - started, 1)}


def scaling_tables(scaling: dict) -> str:
    out = []
    dec = scaling.get("decode") or {}
    if dec.get("rows"):
        out += [f"decode: greedy, {dec['sentences']} sentences, eos forbidden (any2seq model, random init)", "",
                "| output tokens | KV cache s | no cache s | speed-up |", "|---|---|---|---|"]
        out += [f"| {r['length']} | {r['cache_s']:.3f} | {r['no_cache_s']:.3f} | {r['speedup']}x |" for r in dec["rows"]]
    elif dec.get("error"):
        out.append(f"decode scaling failed: {dec['error']}")
    for axis, label in (("batch_tokens", "batch tokens"), ("width", "model width")):
        rows = scaling.get("train", {}).get(axis) or []
        if not rows:
            continue
        out += ["", f"train: tok/s vs {label}", "",
                "| batch tokens | d_model | params | target tok/s | peak RSS MiB | CUDA peak MiB |", "|---|---|---|---|---|---|"]
        for r in rows:
            if r.get("error"):
                out.append(f"| {r['batch_tokens']} | {r['d_model']} | — | failed: {r['error']} | — | — |")
                continue
            tok_s = f"{r['tok_s']:,.0f}" if r.get("tok_s") else "—"
            cuda = f"{r['cuda_peak_mb']:,.0f}" if r.get("cuda_peak_mb") else "—"
            out.append(f"| {r['batch_tokens']} | {r['d_model']} | {r['params'] / 1e6:.1f}M | {tok_s} "
                       f"| {r['peak_rss_mb']:,.0f} | {cuda} |")
    return "\n".join(out)


def plot_scaling(scaling: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    rows = (scaling.get("decode") or {}).get("rows") or []
    ax = axes[0]
    if rows:
        x = [r["length"] for r in rows]
        ax.plot(x, [r["cache_s"] for r in rows], "o-", label="KV cache")
        ax.plot(x, [r["no_cache_s"] for r in rows], "s--", label="no cache (prefix re-run)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [str(v) for v in x])
        ax.legend()
    ax.set(title="greedy decode time vs output length", xlabel="output tokens", ylabel="seconds")
    for ax, axis, key, label in ((axes[1], "batch_tokens", "batch_tokens", "batch tokens"),
                                 (axes[2], "width", "d_model", "d_model (ff = 4 d_model)")):
        pts = [r for r in scaling.get("train", {}).get(axis, []) if r.get("tok_s")]
        if pts:
            x = [r[key] for r in pts]
            ax.plot(x, [r["tok_s"] for r in pts], "o-", color="C0")
            ax.set_ylabel("target tok/s", color="C0")
            mem = ax.twinx()
            cuda = all(r.get("cuda_peak_mb") for r in pts)
            mem.plot(x, [r["cuda_peak_mb"] if cuda else r["peak_rss_mb"] for r in pts], "s--", color="C3")
            mem.set_ylabel("peak CUDA MiB" if cuda else "peak RSS MiB", color="C3")
            ax.set_xticks(x, [str(v) for v in x])
        ax.set(title=f"train speed and memory vs {label.split(' (')[0]}", xlabel=label)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    point_main(sys.argv[1], sys.argv[2])
