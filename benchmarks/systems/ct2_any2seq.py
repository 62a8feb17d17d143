"""CTranslate2 decoding the any2seq model: ``any2seq.export.export_ct2`` converts the model the
any2seq system trained, ``any2seq.export.ct2.CT2Translator`` decodes (float32, the same batches).
Decoding only: its train column stays empty. Runs in the main venv.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import decode_in_batches, read_lines, run_system, versions, write_hyps  # noqa: E402


def engine_device(spec: dict) -> str:
    import ctranslate2

    return "cuda" if spec["device"] == "cuda" and ctranslate2.get_cuda_device_count() > 0 else "cpu"


def body(spec: dict) -> dict:
    from any2seq.export import export_ct2
    from any2seq.export.ct2 import CT2Translator

    out = Path(spec["workdir"]) / "models" / "ct2"
    shutil.rmtree(out, ignore_errors=True)
    export_ct2(Path(spec["source_model"]), out)
    device = engine_device(spec)
    translator = CT2Translator(out, threads=spec["threads"], device=device)
    result = {"versions": versions("ctranslate2", "any2seq"), "decode": {}, "model_dir": str(out),
              "note": f"export_ct2 of the any2seq model, float32, {device}"}
    lines, lengths = read_lines(spec["test_src"]), spec["test_src_lengths"]
    for mode, beam in (("greedy", 1), ("beam5", spec["decode"]["beam"])):
        def translate(batch, indices, beam=beam):
            return translator.translate(batch, beam=beam, max_len=spec["decode"]["max_len"], batch_size=len(batch),
                                        length_penalty=1.0)

        hyps, seconds = decode_in_batches(translate, lines, spec["decode"]["batch_size"], lengths)
        result["decode"][mode] = {"seconds": round(seconds, 3), "sentences": len(lines),
                                  "hyps": write_hyps(spec["workdir"], "ct2", mode, hyps)}
    return result


if __name__ == "__main__":
    run_system("ct2", body)
