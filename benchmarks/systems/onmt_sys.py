"""OpenNMT-py 3.5.1 (when .bench-venv has it): its own data pipeline and training loop
(``onmt.bin.train``) on the shared subword pieces, the same model sizes and schedule (``noam`` with
the learning rate that makes it the inverse-sqrt schedule), ~the same batch size in tokens; then
``onmt.inference_engine.InferenceEnginePY.infer_list`` on the same decoding batches.

Its batches are its own (ONMT buckets and batches by itself), not the shared ones: tok/s counts the
target tokens of the batches it trained on. Steps are timed by wrapping
``Trainer._gradient_accumulation`` (one call per step). Runs in .bench-venv.
"""
from __future__ import annotations

import gzip
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (StepTimer, decode_in_batches, length_limit, read_lines, run_system, setup_torch,  # noqa: E402
                    versions, write_hyps)


def write_data(spec: dict, sp, work: Path) -> None:
    """Pre-tokenised training text (space-separated pieces) and the shared vocabulary, ONMT's format."""
    root = Path(spec["data_root"])
    with gzip.open(root / "train.de.gz", "rt", encoding="utf-8") as f:
        src = [line.rstrip("\n") for line in f]
    with gzip.open(root / "train.en.gz", "rt", encoding="utf-8") as f:
        tgt = [line.rstrip("\n") for line in f]
    src_p, tgt_p = sp.encode(src, out_type=str), sp.encode(tgt, out_type=str)
    keep = [i for i in range(len(src)) if src_p[i] and len(src_p[i]) <= spec["max_train_len"]
            and len(tgt_p[i]) <= spec["max_train_len"]]
    (work / "train.src").write_text("".join(" ".join(src_p[i]) + "\n" for i in keep), encoding="utf-8")
    (work / "train.tgt").write_text("".join(" ".join(tgt_p[i]) + "\n" for i in keep), encoding="utf-8")
    pieces = [sp.id_to_piece(i) for i in range(4, sp.vocab_size())]  # ONMT adds its own specials
    (work / "vocab.txt").write_text("".join(f"{p} 1\n" for p in pieces), encoding="utf-8")


def config(spec: dict, work: Path, cuda: bool) -> str:
    m, t = spec["model"], spec["train"]
    lr = t["lr"] * math.sqrt(m["d_model"]) * math.sqrt(t["lr_warmup"])  # noam == inverse_sqrt(peak lr)
    return f"""
src_vocab: {work / 'vocab.txt'}
share_vocab: true
src_vocab_size: {spec['vocab_size'] + 10}
tgt_vocab_size: {spec['vocab_size'] + 10}
data:
  corpus_1:
    path_src: {work / 'train.src'}
    path_tgt: {work / 'train.tgt'}
save_model: {work / 'model'}
save_checkpoint_steps: {t['steps']}
keep_checkpoint: 1
train_steps: {t['steps']}
valid_steps: {10 ** 9}
report_every: {max(1, t['steps'] // 10)}
seed: {t['seed']}
world_size: 1
gpu_ranks: {[0] if cuda else []}
num_workers: 0
encoder_type: transformer
decoder_type: transformer
enc_layers: {m['layers']}
dec_layers: {m['layers']}
heads: {m['heads']}
hidden_size: {m['d_model']}
word_vec_size: {m['d_model']}
transformer_ff: {m['ff']}
dropout: [{m['dropout']}]
attention_dropout: [0.0]
position_encoding: true
share_embeddings: true
share_decoder_embeddings: true
pos_ffn_activation_fn: relu
batch_type: tokens
batch_size: {t['batch_tokens']}
valid_batch_size: {t['batch_tokens']}
accum_count: [1]
normalization: tokens
optim: adam
adam_beta1: {t['betas'][0]}
adam_beta2: {t['betas'][1]}
learning_rate: {lr}
decay_method: noam
warmup_steps: {t['lr_warmup']}
label_smoothing: {t['label_smoothing']}
max_grad_norm: {t['clip']}
param_init: 0
param_init_glorot: true
log_file: {work / 'train.log'}
"""


def train(spec: dict, sp, work: Path, device) -> dict:
    """Train with OpenNMT-py's own trainer, timing each step; the timer's summary."""
    from onmt.bin import train as onmt_train
    from onmt.trainer import Trainer

    work.mkdir(parents=True, exist_ok=True)
    write_data(spec, sp, work)
    (work / "config.yaml").write_text(config(spec, work, device.type == "cuda"), encoding="utf-8")
    timer, seen = StepTimer(device), {}
    original = Trainer._gradient_accumulation

    def timed(self, true_batches, normalization, total_stats, report_stats):
        pad = self.train_loss.padding_idx
        timer.step(sum(int(b["tgt"][:, 1:, 0].ne(pad).sum()) for b in true_batches))  # eos counted, bos not
        seen.setdefault("model", self.model)
        return original(self, true_batches, normalization, total_stats, report_stats)

    Trainer._gradient_accumulation = timed
    parser = onmt_train._get_parser()
    opt, _ = parser.parse_known_args(["-config", str(work / "config.yaml")])
    onmt_train.train(opt)
    Trainer._gradient_accumulation = original
    params = sum(p.numel() for p in {id(p): p for p in seen["model"].parameters()}.values())
    return {**timer.summary(spec["train"]["timing_warmup"]), "params": params}


def body(spec: dict) -> dict:
    torch, device = setup_torch(spec)
    try:
        import onmt  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"skipped: OpenNMT-py does not import ({e})")
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spec["spm"])
    work = Path(spec["workdir"]) / "models" / "onmt"
    cuda = device.type == "cuda"
    result = {"train": None if spec.get("decode_only") else train(spec, sp, work, device),
              "versions": versions("torch", "onmt"), "decode": {},
              "note": "OpenNMT-py's own batching (~same tokens/batch), noam == inverse_sqrt"}
    checkpoint = work / f"model_step_{spec['train']['steps']}.pt"

    from onmt.inference_engine import InferenceEnginePY
    from onmt.opts import translate_opts
    from onmt.utils.parse import ArgumentParser

    import argparse

    # torch >= 2.6 loads weights only by default; this checkpoint was written just above, by ONMT.
    torch.serialization.add_safe_globals([argparse.Namespace])
    lines, lengths = read_lines(spec["test_src"]), spec["test_src_lengths"]
    dummy = work / "dummy.src"
    dummy.write_text("x\n", encoding="utf-8")
    for mode, beam in (("greedy", 1), ("beam5", spec["decode"]["beam"])):
        tparser = ArgumentParser(description="translate")
        translate_opts(tparser)
        topt = tparser.parse_args(["-model", str(checkpoint), "-src", str(dummy), "-beam_size", str(beam),
                                   "-batch_size", str(spec["decode"]["batch_size"]), "-batch_type", "sents",
                                   "-length_penalty", "avg", "-gpu", "0" if cuda else "-1", "-seed", "1",
                                   "-max_length", str(spec["decode"]["max_len"]),
                                   "-output", str(work / f"onmt-{mode}.pred")])  # its default: ./pred.txt
        ArgumentParser.validate_translate_opts(topt)
        ArgumentParser._get_all_transform_translate(topt)
        ArgumentParser._validate_transforms_opts(topt)
        ArgumentParser.validate_translate_opts_dynamic(topt)
        engine = InferenceEnginePY(topt)

        def translate(batch, indices):
            pieces = [sp.encode(line, out_type=str) for line in batch]
            limits = [length_limit(len(p), spec) for p in pieces]
            engine.translator.max_length = max(limits)
            _, preds = engine.infer_list([" ".join(p) for p in pieces])
            return [sp.decode_pieces(pred[0].split()[:limit]) for pred, limit in zip(preds, limits)]

        hyps, seconds = decode_in_batches(translate, lines, spec["decode"]["batch_size"], lengths)
        engine.terminate()
        result["decode"][mode] = {"seconds": round(seconds, 3), "sentences": len(lines),
                                  "hyps": write_hyps(spec["workdir"], "onmt", mode, hyps)}
    return result


if __name__ == "__main__":
    run_system("onmt", body)
