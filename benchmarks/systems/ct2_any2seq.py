"""CTranslate2 decoding the any2seq model: ``any2seq.export.export_ct2`` converts the model the
any2seq system trained, ``any2seq.export.ct2.CT2Translator`` decodes (float32, the same batches).
Decoding only: its train column stays empty. Runs in the main venv. With ``workers`` > 1
(``ct2-w2``) CTranslate2 runs that many batches at once (``inter_threads``, the threads split
among them), its best setting on few cores.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import decode_modes, run_system, versions  # noqa: E402


def engine_device(spec: dict) -> str:
    import ctranslate2

    return "cuda" if spec["device"] == "cuda" and ctranslate2.get_cuda_device_count() > 0 else "cpu"


def body(spec: dict) -> dict:
    from any2seq.export import export_ct2
    from any2seq.export.ct2 import CT2Translator

    name, workers = spec.get("system", "ct2"), spec.get("variant", {}).get("workers", 1)
    out = Path(spec["workdir"]) / "models" / name
    shutil.rmtree(out, ignore_errors=True)
    export_ct2(Path(spec["source_model"]), out)
    device = engine_device(spec)
    translator = CT2Translator(out, threads=spec["threads"], device=device, workers=workers)
    result = {"versions": versions("ctranslate2", "any2seq"), "decode": {}, "model_dir": str(out),
              "note": f"export_ct2 of the any2seq model, float32, {device}"}

    def translate(batch, indices, beam):
        return translator.translate(batch, beam=beam, max_len=spec["decode"]["max_len"], batch_size=len(batch),
                                    length_penalty=1.0)

    def translate_all(lines, beam):  # every batch queued at once, so each worker always has one
        return translator.translate(lines, beam=beam, max_len=spec["decode"]["max_len"],
                                    batch_size=spec["decode"]["batch_size"], length_penalty=1.0)

    result["decode"] = decode_modes(name, translate, spec, translate_all if workers > 1 else None)
    if workers > 1:
        result["note"] += f"; {workers} batches at a time (inter_threads={workers})"
    return result


if __name__ == "__main__":
    run_system("ct2", body)
