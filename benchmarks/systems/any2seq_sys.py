"""any2seq (and any2seq-bf16: ``train.precision: bf16``, bf16 weights in decoding): its own training
loop (``any2seq.runner.train`` -> ``any2seq.train.loop.fit``) on the shared tokenizer and batches,
then ``any2seq.load(DIR).translate(lines, beam=...)``.

Two things are wrapped, nothing else changed: the tokenizer step copies the shared sentencepiece
model in (so every system sees the same ids), and the batch stream records when each step starts.
Validation is skipped (every system is scored on the same test decode instead): the validation
hook, called once right after the last step, only marks the end of training.
Runs in the main venv.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import StepTimer, decode_modes, run_system, setup_torch, versions  # noqa: E402,E501


def config_dict(spec: dict, out: Path) -> dict:
    m, t = spec["model"], spec["train"]
    side = {"kind": "transformer", "d_model": m["d_model"], "layers": m["layers"], "heads": m["heads"],
            "ff": m["ff"], "dropout": m["dropout"]}
    return {
        "task": "translation",
        "data": {"root": spec["data_root"], "src_lang": "de", "tgt_lang": "en", "max_len": spec["max_train_len"],
                 "cache": str(Path(spec["workdir"]) / "cache")},
        "tokenizer": {"kind": "bpe", "vocab_size": spec["vocab_size"], "joint": True},
        "model": {"encoder": side, "decoder": dict(side), "share_embeddings": True, "tie_output": True},
        "train": {"seed": t["seed"], "batch_tokens": t["batch_tokens"], "lr": t["lr"], "schedule": "inverse_sqrt",
                  "warmup": t["lr_warmup"], "label_smoothing": t["label_smoothing"], "clip": t["clip"],
                  "max_steps": t["steps"], "valid_every": t["steps"], "valid_bleu": False, "metric": "loss",
                  "log_every": max(t["steps"], 1), "keep_last": 1,
                  "precision": spec.get("variant", {}).get("precision", "fp32"),
                  "threads": spec["threads"]},
        "decode": {"beam": spec["decode"]["beam"], "max_len_a": spec["decode"]["max_len_a"],
                   "max_len_b": spec["decode"]["max_len_b"]},
    }


class TimedStream:
    """The task's ``BatchStream`` with a timestamp at each ``next``: the start of a training step."""

    def __init__(self, stream, timer: StepTimer):
        self._stream, self._timer = stream, timer

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._stream)
        self._timer.step(batch.n_tokens)
        return batch

    def __getattr__(self, name):
        return getattr(self._stream, name)


def train(spec: dict, out: Path, timer: StepTimer) -> dict:
    from any2seq.config import config_from_dict
    from any2seq.runner import train as run_train
    from any2seq.tasks import base, translation

    shared = Path(spec["spm"])

    def shared_tokenizer(cfg, run_dir, reuse):
        shutil.copyfile(shared, Path(run_dir) / base.JOINT)
        return base.Tokenizers.load(run_dir, joint=True)

    def timed_batches(cfg, toks, position=(0, 0)):
        return TimedStream(original_batches(cfg, toks, position), timer)

    original_batches = translation.training_batches
    translation.prepare_tokenizers = shared_tokenizer
    translation.training_batches = timed_batches

    def end_of_training(task, model, toks, cfg, device, with_bleu):
        def validate():  # called once, right after the last step (valid_every = steps)
            timer.end()
            return {"loss": 0.0}
        return validate

    translation.Translation.make_validate = end_of_training  # no validation: its one call stops the clock
    cfg = config_from_dict(config_dict(spec, out), source="benchmark spec")
    if out.exists():
        shutil.rmtree(out)
    state = run_train(cfg, out, progress=False)
    return state


def body(spec: dict) -> dict:
    torch, device = setup_torch(spec)
    import any2seq
    from any2seq.seq2seq import count_parameters

    variant = spec.get("variant", {})
    name, bf16, workers = spec.get("system", "any2seq"), variant.get("precision") == "bf16", variant.get("workers", 1)
    out = Path(spec.get("source_model") or Path(spec["workdir"]) / "models" / name)  # a decoding variant: its source's
    timer = StepTimer(device)
    state = None if spec.get("decode_only") or spec.get("source_model") else train(spec, out, timer)
    translator = any2seq.load(out, device=str(device), dtype="bfloat16" if bf16 else "float32")
    train_result = None if state is None else {**timer.summary(spec["train"]["timing_warmup"]),
                                               "params": count_parameters(translator.model),
                                               "final_step": state["step"]}
    result = {"train": train_result, "model_dir": str(out), "versions": versions("torch", "any2seq"), "decode": {}}
    def translate(batch, indices, beam):
        return translator.translate(batch, beam=beam, batch_tokens=10 ** 9, max_len=spec["decode"]["max_len"],
                                    length_penalty=1.0)

    def translate_all(lines, beam):  # the whole file: ``workers`` batches of batch_size at once
        return translator.translate(lines, beam=beam, batch_tokens=10 ** 9, batch_size=spec["decode"]["batch_size"],
                                    workers=workers, max_len=spec["decode"]["max_len"], length_penalty=1.0)

    result["decode"] = decode_modes(name, translate, spec, translate_all if workers > 1 else None)
    if bf16:
        result["note"] = "bf16 autocast in training, bf16 weights in decoding; % of the bf16 matmul probe"
    if workers > 1:
        result["note"] = (f"{out.name}'s model; {workers} batches at a time (translate(workers={workers}), "
                          f"{max(1, spec['threads'] // workers)} thread each)")
    return result


if __name__ == "__main__":
    run_system("any2seq", body)
