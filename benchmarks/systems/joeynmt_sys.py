"""JoeyNMT 2.3.0 (when .bench-venv has it): its own data pipeline (the shared sentencepiece model
as its tokenizer, the shared pieces as its vocabulary) and training loop (``joeynmt.training.train``),
the same sizes and schedule (``warmupinversesquareroot``), ~the same batch size in tokens; then
``joeynmt.prediction.predict`` on the same decoding batches.

Its batches are its own; tok/s counts the target tokens of the batches it trained on. Steps are
timed by wrapping ``TrainManager._train_step`` (one call per step). Runs in .bench-venv.
"""
from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (StepTimer, decode_in_batches, length_limit, read_lines, run_system, setup_torch,  # noqa: E402
                    versions, write_hyps)


def write_data(spec: dict, sp, work: Path) -> None:
    root = Path(spec["data_root"])
    for split, name, n in (("train", "train", None), ("val", "dev", 8)):
        for lang in ("de", "en"):
            with gzip.open(root / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
                lines = [line for i, line in enumerate(f) if n is None or i < n]
            (work / f"{name}.{lang}").write_text("".join(lines), encoding="utf-8")
    pieces = [sp.id_to_piece(i) for i in range(4, sp.vocab_size())]  # JoeyNMT adds its own specials
    (work / "vocab.txt").write_text("".join(p + "\n" for p in pieces), encoding="utf-8")


def config(spec: dict, work: Path, cuda: bool) -> str:
    m, t = spec["model"], spec["train"]
    side = lambda: f"""
        type: transformer
        num_layers: {m['layers']}
        num_heads: {m['heads']}
        embeddings: {{embedding_dim: {m['d_model']}, scale: true, dropout: 0.0}}
        hidden_size: {m['d_model']}
        ff_size: {m['ff']}
        dropout: {m['dropout']}
        layer_norm: pre"""  # noqa: E731
    lang = lambda code: f"""
        lang: {code}
        level: bpe
        lowercase: false
        max_length: {spec['max_train_len']}
        voc_file: {work / 'vocab.txt'}
        tokenizer_type: sentencepiece
        tokenizer_cfg: {{model_file: {spec['spm']}}}"""  # noqa: E731
    return f"""
name: bench
joeynmt_version: 2.3.0
model_dir: {work / 'model'}
use_cuda: {str(cuda).lower()}
random_seed: {t['seed']}
data:
    train: {work / 'train'}
    dev: {work / 'dev'}
    dataset_type: plain
    src: {lang('de')}
    trg: {lang('en')}
training:
    optimizer: adamw
    adam_betas: [{t['betas'][0]}, {t['betas'][1]}]
    weight_decay: 0.0
    learning_rate: {t['lr']}
    learning_rate_min: 1.0e-9
    scheduling: warmupinversesquareroot
    learning_rate_warmup: {t['lr_warmup']}
    loss: crossentropy
    label_smoothing: {t['label_smoothing']}
    normalization: tokens
    clip_grad_norm: {t['clip']}
    batch_size: {t['batch_tokens']}
    batch_type: token
    batch_multiplier: 1
    updates: {t['steps']}
    epochs: 1000
    validation_freq: {max(1, t['steps'] // 10) * 10 ** 6}  # never, and a multiple of logging_freq as JoeyNMT requires
    logging_freq: {max(1, t['steps'] // 10)}
    overwrite: true
    shuffle: true
    keep_best_ckpts: 1
    num_workers: 0
model:
    initializer: xavier_uniform
    embed_initializer: xavier_uniform
    tied_embeddings: true
    tied_softmax: true
    encoder: {side()}
    decoder: {side()}
testing:
    n_best: 1
    beam_size: 1
    beam_alpha: 1
    batch_size: {spec['decode']['batch_size']}
    batch_type: sentence
    max_output_length: {spec['decode']['max_len']}
    eval_metrics: [bleu]
"""


def body(spec: dict) -> dict:
    torch, device = setup_torch(spec)
    try:
        import joeynmt  # noqa: F401
        from joeynmt import training
        from joeynmt.config import load_config, parse_global_args
        from joeynmt.prediction import predict, prepare
    except ImportError as e:
        raise SystemExit(f"skipped: JoeyNMT does not import ({e})")
    import sentencepiece as spm

    if not hasattr(spm.SentencePieceProcessor, "SetVocabulary"):
        # JoeyNMT restricts the encoder to its vocabulary, a call sentencepiece 0.2 no longer has.
        # Its vocabulary here is every piece of the model, so the restriction changes nothing.
        spm.SentencePieceProcessor.SetVocabulary = lambda self, pieces: None
    sp = spm.SentencePieceProcessor(model_file=spec["spm"])
    work = Path(spec["workdir"]) / "models" / "joeynmt"
    work.mkdir(parents=True, exist_ok=True)
    write_data(spec, sp, work)
    cuda = device.type == "cuda"
    (work / "config.yaml").write_text(config(spec, work, cuda), encoding="utf-8")

    timer, seen = StepTimer(device), {}
    original = training.TrainManager._train_step

    def timed(self, batch):
        timer.step(int(batch.ntokens))
        seen.setdefault("model", self.model)
        return original(self, batch)

    training.TrainManager._train_step = timed
    shutil.rmtree(work / "model", ignore_errors=True)
    (work / "model").mkdir()  # as joeynmt's __main__ does before training
    training.train(rank=0, world_size=1, cfg=load_config(work / "config.yaml"), skip_test=True)
    training.TrainManager._train_step = original
    params = sum(p.numel() for p in {id(p): p for p in seen["model"].parameters()}.values())
    result = {"train": {**timer.summary(spec["train"]["timing_warmup"]), "params": params},
              "versions": versions("torch", "joeynmt"), "decode": {},
              "note": "JoeyNMT's own batching (~same tokens/batch)"}

    cfg = load_config(work / "config.yaml")
    cfg["testing"]["load_model"] = str(work / "model" / "latest.ckpt")
    args = parse_global_args(cfg, rank=0, mode="translate")
    model, _, _, stream = prepare(args, rank=0, mode="translate")
    lines, lengths = read_lines(spec["test_src"]), spec["test_src_lengths"]
    for mode, beam in (("greedy", 1), ("beam5", spec["decode"]["beam"])):
        def translate(batch, indices, beam=beam):
            limits = [length_limit(len(p), spec) for p in sp.encode(batch)]
            stream.reset_cache()
            for line in batch:
                stream.set_item(line)
            test_args = args.test._replace(beam_size=beam, max_output_length=max(limits), batch_size=len(batch))
            _, _, hyps, tokens, _, _ = predict(model=model, data=stream, compute_loss=False, device=args.device,
                                               rank=0, n_gpu=args.n_gpu, normalization="none", num_workers=0,
                                               args=test_args, autocast=args.autocast)
            return [sp.decode_pieces(list(toks)[:limit]) for toks, limit in zip(tokens, limits)]

        hyps, seconds = decode_in_batches(translate, lines, spec["decode"]["batch_size"], lengths)
        result["decode"][mode] = {"seconds": round(seconds, 3), "sentences": len(lines),
                                  "hyps": write_hyps(spec["workdir"], "joeynmt", mode, hyps)}
    return result


if __name__ == "__main__":
    run_system("joeynmt", body)
