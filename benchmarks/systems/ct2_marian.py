"""CTranslate2 decoding the HF Marian model: Hugging Face's route, ``ctranslate2.converters.
TransformersConverter`` on the saved model, ``ctranslate2.Translator.translate_batch`` (float32).
Decoding only: its train column stays empty. Runs in .bench-venv.
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

    out = Path(spec["workdir"]) / "models" / "ct2-hf"
    shutil.rmtree(out, ignore_errors=True)
    ctranslate2.converters.TransformersConverter(spec["source_model"]).convert(str(out), quantization=None)
    device = "cuda" if spec["device"] == "cuda" and ctranslate2.get_cuda_device_count() > 0 else "cpu"
    translator = ctranslate2.Translator(str(out), device=device, compute_type="default", inter_threads=1,
                                        intra_threads=spec["threads"])
    sp = spm.SentencePieceProcessor(model_file=spec["spm"])
    result = {"versions": versions("ctranslate2", "transformers"), "decode": {}, "model_dir": str(out),
              "note": f"TransformersConverter of the HF model, float32, {device}"}

    def run(batch, indices, beam):
        pieces = [sp.encode(line, out_type=str) for line in batch]
        limits = [length_limit(len(p), spec) for p in pieces]
        results = translator.translate_batch([p + ["</s>"] for p in pieces], beam_size=beam, length_penalty=1.0,
                                             max_decoding_length=max(limits), return_scores=False)
        return [sp.decode_pieces(r.hypotheses[0][:limit]) for r, limit in zip(results, limits)]

    result["decode"] = decode_modes("ct2-hf", run, spec)
    return result


if __name__ == "__main__":
    run_system("ct2-hf", body)
