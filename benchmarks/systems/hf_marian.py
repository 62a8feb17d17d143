"""Hugging Face transformers: a ``MarianMTModel`` of the same size (random init, post-LN as Marian
is), trained by a plain loop on the shared batches, decoded with ``generate``.

``hf-bf16`` (``variant["precision"] == "bf16"``) is what an HF user does for bf16 on a CPU: the same
loop with the forward pass and loss under ``torch.autocast(dtype=torch.bfloat16)`` (float32 master
weights, saved as float32), and ``generate`` on the model cast to bf16 (``model.to(torch.bfloat16)``).

Marian's conventions are kept so that CTranslate2's converter takes the model as it is: the
shared sentencepiece vocabulary plus a final ``<pad>`` (pad and decoder start, a zero
embedding), sources end in ``</s>``. The model and a ``MarianTokenizer`` are saved for ct2-hf.
Runs in .bench-venv.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (
    EOS,
    PAD,
    StepTimer,
    decode_modes,
    length_limit,
    load_batches,
    run_system,
    setup_torch,
    update,
    versions,
)


def marian_vocab(sp) -> list[str]:
    """The shared pieces, then Marian's ``<pad>`` last (sentencepiece's own id-0 piece is renamed)."""
    pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
    if pieces[PAD] == "<pad>":
        pieces[PAD] = "<spm_pad>"
    return pieces + ["<pad>"]


def build(spec, vocab_size: int):
    from transformers import MarianConfig, MarianMTModel

    m = spec["model"]
    pad = vocab_size - 1
    config = MarianConfig(vocab_size=vocab_size, decoder_vocab_size=vocab_size, d_model=m["d_model"],
                          encoder_layers=m["layers"], decoder_layers=m["layers"],
                          encoder_attention_heads=m["heads"], decoder_attention_heads=m["heads"],
                          encoder_ffn_dim=m["ff"], decoder_ffn_dim=m["ff"], dropout=m["dropout"],
                          attention_dropout=0.0, activation_dropout=0.0, activation_function="relu",
                          max_position_embeddings=512, scale_embedding=True, pad_token_id=pad,
                          decoder_start_token_id=pad, eos_token_id=EOS, forced_eos_token_id=EOS, bos_token_id=None,
                          share_encoder_decoder_embeddings=True, tie_word_embeddings=True, num_beams=1,
                          bad_words_ids=[[pad]], max_length=512)
    return MarianMTModel(config)


def save_tokenizer(sp, spm_path: str, out: Path) -> None:
    """A MarianTokenizer over the shared sentencepiece model (for CTranslate2's converter)."""
    import shutil

    from transformers import MarianTokenizer

    vocab = marian_vocab(sp)
    (out / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(vocab)}), encoding="utf-8")
    for name in ("source.spm", "target.spm"):
        shutil.copyfile(spm_path, out / name)
    tok = MarianTokenizer(str(out / "source.spm"), str(out / "target.spm"), str(out / "vocab.json"), source_lang="de",
                          target_lang="en", unk_token="<unk>", eos_token="</s>", pad_token="<pad>")
    tok.save_pretrained(out)


def train_model(model, spec: dict, device, pad: int, bf16: bool = False) -> dict:
    """Train ``model`` on the shared batches (under bf16 autocast with ``bf16``); the timer's summary."""
    import torch
    import torch.nn.functional as F

    t = spec["train"]
    params = list({id(p): p for p in model.parameters()}.values())
    opt = torch.optim.AdamW(params, lr=t["lr"], betas=tuple(t["betas"]), eps=t["eps"], weight_decay=0.0)
    timer = StepTimer(device)
    model.train()
    for step, b in enumerate(load_batches(spec), start=1):
        n_tokens = int(b["tgt_len"].sum())
        timer.step(n_tokens)
        src = torch.from_numpy(b["src"]).long()
        lengths = torch.from_numpy(b["src_len"]).long()
        B = src.size(0)
        src = torch.cat([src, torch.full((B, 1), pad)], dim=1)
        src[torch.arange(B), lengths] = EOS  # Marian sources end in </s>
        mask = torch.arange(src.size(1))[None, :] <= lengths[:, None]
        src = src.masked_fill(~mask, pad)
        labels = torch.from_numpy(b["tgt"]).long()
        labels = labels.masked_fill(labels == PAD, -100)
        src, mask, labels = src.to(device), mask.long().to(device), labels.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=src, attention_mask=mask, labels=labels).logits
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                                   label_smoothing=t["label_smoothing"], reduction="sum")
        update(opt, params, loss, n_tokens, step, t)
    timer.end()
    return {**timer.summary(t["timing_warmup"]), "params": sum(p.numel() for p in params)}


def body(spec: dict) -> dict:
    torch, device = setup_torch(spec)
    import sentencepiece as spm
    import transformers

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    sp = spm.SentencePieceProcessor(model_file=spec["spm"])
    vocab = sp.vocab_size() + 1
    pad = vocab - 1
    name, variant = spec.get("system", "hf"), spec.get("variant", {})
    workers, bf16 = variant.get("workers", 1), variant.get("precision") == "bf16"
    out = Path(spec.get("source_model") or Path(spec["workdir"]) / "models" / name)
    if spec.get("decode_only") or spec.get("source_model"):  # the model the last run saved; hf-w2: hf's
        model, train = transformers.MarianMTModel.from_pretrained(out).to(device), None
    else:
        model = build(spec, vocab).to(device)
        train = train_model(model, spec, device, pad, bf16)
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        save_tokenizer(sp, spec["spm"], out)
    model.eval()
    if bf16:
        model.to(torch.bfloat16)
    result = {"train": train, "model_dir": str(out), "versions": versions("torch", "transformers"), "decode": {},
              "note": "MarianMTModel (post-LN), generate()" + (
                  "; bf16 autocast in training, bf16 weights in decoding; % of the bf16 matmul probe" if bf16 else "")}

    def run(batch_lines, indices, beam):
        ids = [s + [EOS] for s in sp.encode(batch_lines)]
        width = max(len(s) for s in ids)
        src = torch.full((len(ids), width), pad, dtype=torch.long)
        for row, seq in enumerate(ids):
            src[row, : len(seq)] = torch.tensor(seq)
        limits = [length_limit(len(s) - 1, spec) for s in ids]
        with torch.inference_mode():
            out = model.generate(input_ids=src.to(device), attention_mask=(src != pad).long().to(device),
                                 num_beams=beam, max_new_tokens=max(limits), length_penalty=1.0, do_sample=False,
                                 early_stopping=False)
        texts = []
        for row, limit in zip(out.tolist(), limits):
            row = row[1:]  # the decoder start token
            row = row[: row.index(EOS)] if EOS in row else row
            texts.append(sp.decode([i for i in row[:limit] if i < pad]))
        return texts

    def run_all(lines, beam):  # hf-w2: the batches of 32 in ``workers`` threads of threads/workers each
        from concurrent.futures import ThreadPoolExecutor

        size = spec["decode"]["batch_size"]
        batches = [lines[k: k + size] for k in range(0, len(lines), size)]
        with ThreadPoolExecutor(workers, initializer=torch.set_num_threads,
                                initargs=(max(1, spec["threads"] // workers),)) as pool:
            return [text for texts in pool.map(lambda b: run(b, None, beam), batches) for text in texts]

    result["decode"] = decode_modes(name, run, spec, run_all if workers > 1 else None)
    if workers > 1:
        result["note"] += (f"; {workers} batches at a time (threads sharing the model, as any2seq's workers: "
                           "HF has no such option of its own)")
    return result


if __name__ == "__main__":
    run_system("hf", body)
