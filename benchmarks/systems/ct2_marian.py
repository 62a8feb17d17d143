"""CTranslate2 decoding the HF Marian model: Hugging Face's route, ``ctranslate2.converters.
TransformersConverter`` on the saved model, ``ctranslate2.Translator.translate_batch`` (float32).
Decoding only: its train column stays empty. Runs in .bench-venv. With ``variant["workers"]``
(``ct2-hf-w2``) CTranslate2 runs that many batches at once (``inter_threads``, the threads split
among them): the peer's own form of any2seq's ``translate(workers=2)``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import decode_modes, length_limit, run_system, versions  # noqa: E402


def body(spec: dict) -> dict:
    import ctranslate2
    import sentencepiece as spm

    name, workers = spec.get("system", "ct2-hf"), spec.get("variant", {}).get("workers", 1)
    out = Path(spec["workdir"]) / "models" / name
    shutil.rmtree(out, ignore_errors=True)
    ctranslate2.converters.TransformersConverter(spec["source_model"]).convert(str(out), quantization=None)
    device = "cuda" if spec["device"] == "cuda" and ctranslate2.get_cuda_device_count() > 0 else "cpu"
    translator = ctranslate2.Translator(str(out), device=device, compute_type="default", inter_threads=workers,
                                        intra_threads=max(1, spec["threads"] // workers))
    sp = spm.SentencePieceProcessor(model_file=spec["spm"])
    result = {"versions": versions("ctranslate2", "transformers"), "decode": {}, "model_dir": str(out),
              "note": f"TransformersConverter of the HF model, float32, {device}"}

    def submit(batch, beam):
        pieces = [sp.encode(line, out_type=str) for line in batch]
        limits = [length_limit(len(p), spec) for p in pieces]
        results = translator.translate_batch([p + ["</s>"] for p in pieces], beam_size=beam, length_penalty=1.0,
                                             max_decoding_length=max(limits), return_scores=False,
                                             asynchronous=workers > 1)
        return results, limits

    def texts(results, limits):
        return [sp.decode_pieces((r.result() if workers > 1 else r).hypotheses[0][:limit])
                for r, limit in zip(results, limits)]

    def run(batch, indices, beam):
        return texts(*submit(batch, beam))

    def run_all(lines, beam):  # every batch queued at once, so each worker always has one
        size = spec["decode"]["batch_size"]
        pending = [submit(lines[k: k + size], beam) for k in range(0, len(lines), size)]
        return [text for results, limits in pending for text in texts(results, limits)]

    result["decode"] = decode_modes(name, run, spec, run_all if workers > 1 else None)
    if workers > 1:
        result["note"] += f"; {workers} batches at a time (inter_threads={workers})"
    return result


if __name__ == "__main__":
    run_system("ct2-hf", body)
