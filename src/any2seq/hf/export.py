"""``any2seq export --hf``: an any2seq Transformer translation model written as a ``transformers``
model directory that ``AutoModelForSeq2SeqLM`` and ``AutoTokenizer`` load: ``MarianMTModel`` for
post-LN models, ``PegasusForConditionalGeneration`` for pre-LN ones (the same layers with a final
LayerNorm on each side). The inverse of ``import_marian``: the same renaming, q|k|v split, and the
inverse permutations of the model width and (for an imported Marian vocabulary) of the token ids.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import Tensor

from ..config import Config
from ..errors import UserError
from ..fileio import atomic_write
from ..nn.embedding import sinusoids
from ..train.checkpoint import save_tensors
from .tokenizer import FILES as MARIAN_FILES
from .tokenizer import any2seq_order, read_vocab
from .tokenizer_json import write_spm_tokenizer
from .weights import inverse, new_directory, width_order

FAMILIES = {"post": ("marian", "MarianMTModel"), "pre": ("pegasus", "PegasusForConditionalGeneration")}


def check_exportable(cfg: Config, model_dir: Path) -> None:
    """A one-line UserError naming the key when the model has no ``transformers`` counterpart."""
    where = model_dir / "config.yaml"
    enc, dec = cfg.model.encoder, cfg.model.decoder
    if cfg.task != "translation":
        raise UserError(f"{where}: task: only translation models export to transformers, not {cfg.task}")
    if enc.kind != "transformer" or dec.kind != "transformer":
        raise UserError(f"{where}: model.encoder.kind/decoder.kind: transformers export needs a Transformer encoder "
                        f"and decoder, not {enc.kind} + {dec.kind}")
    checks = [
        ("model.decoder.d_model", enc.d_model == dec.d_model, "needs equal encoder and decoder widths"),
        ("model.decoder.norm", enc.norm == dec.norm, "needs the same norm on both sides"),
        ("model.decoder.activation", enc.activation == dec.activation, "needs the same activation on both sides"),
        ("model.encoder.positions", enc.positions == dec.positions == "sinusoidal",
         "learned positions have no Marian/Pegasus counterpart (their position tables are sinusoidal)"),
        ("model.share_embeddings", cfg.model.share_embeddings and cfg.model.tie_output,
         "Marian and Pegasus share one embedding between encoder, decoder and output: needs share_embeddings "
         "and tie_output true"),
        ("model.encoder.d_model", enc.d_model % 2 == 0, "must be even"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise UserError(f"{where}: {key}: {why}")


def hf_config(cfg: Config, vocab: int, ids: dict[str, int]) -> dict:
    """config.json: the family's architecture with the model's sizes and special ids."""
    enc, dec = cfg.model.encoder, cfg.model.decoder
    model_type, architecture = FAMILIES[enc.norm]
    return {"architectures": [architecture], "model_type": model_type, "vocab_size": vocab,
            "d_model": enc.d_model, "encoder_layers": enc.layers, "decoder_layers": dec.layers,
            "encoder_attention_heads": enc.heads, "decoder_attention_heads": dec.heads,
            "encoder_ffn_dim": enc.ff, "decoder_ffn_dim": dec.ff, "activation_function": enc.activation,
            "dropout": enc.dropout, "attention_dropout": 0.0, "activation_dropout": 0.0, "scale_embedding": True,
            "max_position_embeddings": max(enc.max_positions, 1024), "pad_token_id": ids["pad"],
            "eos_token_id": ids["eos"], "decoder_start_token_id": ids["start"], "forced_eos_token_id": None,
            "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True, "is_encoder_decoder": True}


def generation_config(cfg: Config, ids: dict[str, int], never_output: list[int]) -> dict:
    """generation_config.json: the model's own decode settings (beam, length penalty, suppressed ids),
    with HF's stopping rule set to any2seq's (``early_stopping``: a beam ends once it holds K finished)."""
    return {"decoder_start_token_id": ids["start"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"],
            "num_beams": cfg.decode.beam, "length_penalty": cfg.decode.length_penalty, "early_stopping": True,
            "max_length": 512, "bad_words_ids": [[i] for i in never_output] or None}


def hf_state_dict(model, cfg: Config, vocab_order: Tensor) -> dict[str, Tensor]:
    """any2seq's weights under Marian/Pegasus names, in their width and vocabulary order."""
    D, pre = cfg.model.encoder.d_model, cfg.model.encoder.norm == "pre"
    back = inverse(width_order(D))  # hf vector = any2seq vector[back]
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    out: dict[str, Tensor] = {}
    shared = sd["encoder.embed.tokens.weight"][inverse(vocab_order)][:, back]
    out["model.shared.weight"] = shared
    bias = sd.get("decoder.proj.bias")
    out["final_logits_bias"] = (bias[inverse(vocab_order)] if bias is not None else torch.zeros(shared.size(0)))[None]
    table = sinusoids(max(cfg.model.encoder.max_positions, 1024), D)[:, back]
    for side in ("encoder", "decoder"):
        out[f"model.{side}.embed_positions.weight"] = table

    def linear(dst: str, src: str, reads: bool) -> None:
        w, b = sd[f"{src}.weight"], sd[f"{src}.bias"]
        out[f"{dst}.weight"], out[f"{dst}.bias"] = (w[:, back], b) if reads else (w[back], b[back])

    def split(dsts: list[str], src: str) -> None:  # fused q|k|v or k|v, each reading the stream
        for dst, w, b in zip(dsts, sd[f"{src}.weight"].chunk(len(dsts)), sd[f"{src}.bias"].chunk(len(dsts))):
            out[f"{dst}.weight"], out[f"{dst}.bias"] = w[:, back], b

    def norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = sd[f"{src}.weight"][back], sd[f"{src}.bias"][back]

    for i in range(cfg.model.encoder.layers):
        a, h = f"encoder.layers.{i}", f"model.encoder.layers.{i}"
        split([f"{h}.self_attn.{p}_proj" for p in "qkv"], f"{a}.attn.qkv")
        linear(f"{h}.self_attn.out_proj", f"{a}.attn.out", False)
        norm(f"{h}.self_attn_layer_norm", f"{a}.norm1")
        linear(f"{h}.fc1", f"{a}.ff.0", True)
        linear(f"{h}.fc2", f"{a}.ff.2", False)
        norm(f"{h}.final_layer_norm", f"{a}.norm2")
    for i in range(cfg.model.decoder.layers):
        a, h = f"decoder.layers.{i}", f"model.decoder.layers.{i}"
        split([f"{h}.self_attn.{p}_proj" for p in "qkv"], f"{a}.self_attn.qkv")
        linear(f"{h}.self_attn.out_proj", f"{a}.self_attn.out", False)
        norm(f"{h}.self_attn_layer_norm", f"{a}.norm1")
        linear(f"{h}.encoder_attn.q_proj", f"{a}.cross_attn.q", True)
        split([f"{h}.encoder_attn.{p}_proj" for p in "kv"], f"{a}.cross_attn.kv")
        linear(f"{h}.encoder_attn.out_proj", f"{a}.cross_attn.out", False)
        norm(f"{h}.encoder_attn_layer_norm", f"{a}.norm2")
        linear(f"{h}.fc1", f"{a}.ff.0", True)
        linear(f"{h}.fc2", f"{a}.ff.2", False)
        norm(f"{h}.final_layer_norm", f"{a}.norm3")
    if pre:
        norm("model.encoder.layer_norm", "encoder.norm")
        norm("model.decoder.layer_norm", "decoder.norm")
    return {k: v.clone() for k, v in out.items()}  # no two names share memory (chunks, the position table)


def export_hf(model_dir: Path, out: Path) -> Path:
    """Write the ``transformers`` model directory ``out`` for the any2seq model in ``model_dir``."""
    from ..modeldir import load_model, read_card, read_config

    model_dir = Path(model_dir)
    read_card(model_dir)
    cfg = read_config(model_dir)
    check_exportable(cfg, model_dir)
    model, toks, cfg, _ = load_model(model_dir)
    marian_vocab = cfg.tokenizer.kind == "marian"
    if not marian_vocab and not cfg.tokenizer.joint:
        raise UserError(f"{model_dir / 'config.yaml'}: tokenizer.joint: needs one joint tokenizer (shared embedding)")
    V = toks.tgt.vocab_size
    # vocab_order[any2seq id] = hf id: an imported Marian model goes back to vocab.json's ids, others keep theirs
    vocab_order = torch.tensor(any2seq_order(read_vocab(model_dir / "vocab.json")) if marian_vocab else range(V))
    ids = {"pad": int(vocab_order[0]), "eos": int(vocab_order[model.eos]), "start": int(vocab_order[model.bos])}
    never = [int(vocab_order[i]) for i in cfg.model.decoder.never_output]
    with new_directory(out) as tmp:
        save_tensors(tmp / "model.safetensors", hf_state_dict(model, cfg, vocab_order), metadata={"format": "pt"})
        atomic_write(tmp / "config.json", json.dumps(hf_config(cfg, V, ids), indent=2) + "\n")
        atomic_write(tmp / "generation_config.json", json.dumps(generation_config(cfg, ids, never), indent=2) + "\n")
        if marian_vocab:
            for name in MARIAN_FILES:
                shutil.copyfile(model_dir / name, tmp / name)
            tok_cfg = {"tokenizer_class": "MarianTokenizer", "source_lang": cfg.data.src_lang,
                       "target_lang": cfg.data.tgt_lang, "eos_token": "</s>", "unk_token": "<unk>",
                       "pad_token": "<pad>", "model_max_length": 512, "separate_vocabs": False}
            atomic_write(tmp / "tokenizer_config.json", json.dumps(tok_cfg, indent=2) + "\n")
        else:
            write_spm_tokenizer(toks.src, tmp, source_eos=cfg.model.encoder.eos)
    return Path(out)
