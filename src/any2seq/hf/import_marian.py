"""``any2seq import-hf``: a local MarianMTModel directory (opus-mt and the like) becomes an any2seq
model directory that translate, evaluate, serve, export, plot and fine-tuning take.

Marian is a post-LN Transformer (Vaswani et al., 2017; Junczys-Dowmunt et al., 2018) with a shared
vocabulary, sqrt(D)-scaled embeddings, sinusoidal positions, a fixed output bias and </s> after
every source; each has an any2seq config key (``norm``, ``activation``, ``eos``, ``output_bias``,
``start``, ``never_output``). Weights are renamed, q|k|v fused, and re-indexed along the model width
(``weights.width_order``) and the vocabulary (``tokenizer.any2seq_order``).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import Tensor

from ..config import (Config, DataConfig, DecodeConfig, ModelConfig, TokenizerConfig, TransformerDecoderConfig,
                      TransformerEncoderConfig)
from ..errors import UserError
from ..modeldir import write_card, write_config
from ..nn.embedding import sinusoids
from ..train.checkpoint import save_tensors, unique_tensors
from .tokenizer import FILES, any2seq_order, read_vocab
from .weights import inverse, new_directory, read_checkpoint, width_order

ACTIVATIONS = {"swish": "swish", "silu": "swish", "relu": "relu", "gelu": "gelu"}


def _read_json(path: Path, required: bool = True) -> dict:
    if not path.is_file():
        if required:
            raise UserError(f"{path}: missing; is {path.parent} a Hugging Face model directory?")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not readable JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def check_marian(folder: Path, hf: dict, tok_cfg: dict) -> None:
    """A one-line UserError naming what is not supported."""
    where = folder / "config.json"
    if hf.get("model_type") != "marian":
        raise UserError(f"{where}: model_type {hf.get('model_type')!r}: only MarianMTModel directories import "
                        "(model_type 'marian')")
    vocab = hf.get("vocab_size")
    if (not hf.get("share_encoder_decoder_embeddings", True) or hf.get("decoder_vocab_size") not in (None, vocab)
            or tok_cfg.get("separate_vocabs")):
        raise UserError(f"{where}: separate source and target vocabularies are not supported")
    if not hf.get("tie_word_embeddings", True):
        raise UserError(f"{where}: tie_word_embeddings false (an output layer apart from the embeddings) is not "
                        "supported")
    if ACTIVATIONS.get(hf.get("activation_function", "gelu")) is None:
        raise UserError(f"{where}: activation_function {hf.get('activation_function')!r} is not supported "
                        f"({', '.join(ACTIVATIONS)})")
    if not hf.get("scale_embedding", False):
        raise UserError(f"{where}: scale_embedding false is not supported (any2seq scales embeddings by sqrt(d_model))")
    if hf.get("d_model", 0) % 2:
        raise UserError(f"{where}: an odd d_model ({hf.get('d_model')}) is not supported")
    for name in FILES:
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: missing; import-hf needs MarianTokenizer's files ({', '.join(FILES)})")


def any2seq_config(hf: dict, tok_cfg: dict, gen: dict, never_output: tuple[int, ...]) -> Config:
    """The any2seq config of a Marian model: post-LN, its activation, </s> after the source,
    decoding from <pad>, the fixed output bias, and the decode settings of its generation config."""
    common = dict(d_model=hf["d_model"], dropout=float(hf.get("dropout", 0.1)), norm="post",
                  activation=ACTIVATIONS[hf.get("activation_function", "gelu")])
    encoder = TransformerEncoderConfig(layers=hf["encoder_layers"], heads=hf["encoder_attention_heads"],
                                       ff=hf["encoder_ffn_dim"], eos=True, **common)
    decoder = TransformerDecoderConfig(layers=hf["decoder_layers"], heads=hf["decoder_attention_heads"],
                                       ff=hf["decoder_ffn_dim"], start="pad", output_bias=True,
                                       never_output=never_output, **common)
    src, tgt = tok_cfg.get("source_lang"), tok_cfg.get("target_lang")
    data = DataConfig(src_lang=src if isinstance(src, str) else "src", tgt_lang=tgt if isinstance(tgt, str) else "tgt")
    decode = DecodeConfig(beam=int(gen.get("num_beams", hf.get("num_beams", 4)) or 1),
                          length_penalty=float(gen.get("length_penalty", 1.0)))
    return Config(task="translation", data=data, tokenizer=TokenizerConfig(kind="marian", vocab_size=hf["vocab_size"]),
                  model=ModelConfig(encoder=encoder, decoder=decoder, tie_output=True, share_embeddings=True),
                  decode=decode)


def _take(tensors: dict[str, Tensor], *names: str) -> Tensor:
    for name in names:
        if name in tensors:
            return tensors[name]
    raise UserError(f"the checkpoint has no {names[0]}")


def convert_weights(tensors: dict[str, Tensor], hf: dict, vocab_order: Tensor) -> dict[str, Tensor]:
    """Marian's state dict -> any2seq's (``model.encoder``/``model.decoder`` names in, any2seq out)."""
    w = width_order(hf["d_model"])
    tensors = {k.removeprefix("model."): v for k, v in tensors.items()}
    shared = _take(tensors, "shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
    for name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        if name in tensors and not torch.equal(tensors[name], shared):
            raise UserError(f"the checkpoint's {name} differs from the shared embedding: untied or separate "
                            "embeddings are not supported")
    for side in ("encoder", "decoder"):
        table = tensors.get(f"{side}.embed_positions.weight")
        if table is not None and not torch.allclose(table, sinusoids(table.size(0), table.size(1))[:, inverse(w)],
                                                    atol=1e-3):
            raise UserError(f"the checkpoint's {side}.embed_positions differ from Marian's sinusoids; "
                            "learned positions are not supported")

    def reads(name: str) -> Tensor:  # a layer reading the residual stream: permute its input columns
        return tensors[name][:, w]

    def writes(name: str) -> Tensor:  # a layer writing the residual stream (weight or bias): permute its rows
        return tensors[name][w]

    out = {"encoder.embed.tokens.weight": shared[vocab_order][:, w]}
    out["decoder.proj.bias"] = _take(tensors, "final_logits_bias", "model.final_logits_bias").reshape(-1)[vocab_order]

    def linear(dst: str, src: str, kind) -> None:
        out[f"{dst}.weight"] = kind(f"{src}.weight")
        out[f"{dst}.bias"] = tensors[f"{src}.bias"][w] if kind is writes else tensors[f"{src}.bias"]

    def fused(dst: str, srcs: list[str]) -> None:  # q|k|v or k|v, each reading the stream
        out[f"{dst}.weight"] = torch.cat([reads(f"{s}.weight") for s in srcs])
        out[f"{dst}.bias"] = torch.cat([tensors[f"{s}.bias"] for s in srcs])

    def norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = writes(f"{src}.weight"), writes(f"{src}.bias")

    for i in range(hf["encoder_layers"]):
        a, m = f"encoder.layers.{i}", f"encoder.layers.{i}"
        fused(f"{a}.attn.qkv", [f"{m}.self_attn.{p}_proj" for p in "qkv"])
        linear(f"{a}.attn.out", f"{m}.self_attn.out_proj", writes)
        norm(f"{a}.norm1", f"{m}.self_attn_layer_norm")
        linear(f"{a}.ff.0", f"{m}.fc1", reads)
        linear(f"{a}.ff.2", f"{m}.fc2", writes)
        norm(f"{a}.norm2", f"{m}.final_layer_norm")
    for i in range(hf["decoder_layers"]):
        a, m = f"decoder.layers.{i}", f"decoder.layers.{i}"
        fused(f"{a}.self_attn.qkv", [f"{m}.self_attn.{p}_proj" for p in "qkv"])
        linear(f"{a}.self_attn.out", f"{m}.self_attn.out_proj", writes)
        norm(f"{a}.norm1", f"{m}.self_attn_layer_norm")
        linear(f"{a}.cross_attn.q", f"{m}.encoder_attn.q_proj", reads)
        fused(f"{a}.cross_attn.kv", [f"{m}.encoder_attn.{p}_proj" for p in "kv"])
        linear(f"{a}.cross_attn.out", f"{m}.encoder_attn.out_proj", writes)
        norm(f"{a}.norm2", f"{m}.encoder_attn_layer_norm")
        linear(f"{a}.ff.0", f"{m}.fc1", reads)
        linear(f"{a}.ff.2", f"{m}.fc2", writes)
        norm(f"{a}.norm3", f"{m}.final_layer_norm")
    return out


def never_output_ids(gen: dict, hf: dict, marian_to_any2seq: dict[int, int]) -> tuple[int, ...]:
    """<pad> (the decoder start), and the single-token ``bad_words_ids`` of the generation config."""
    ids = {0}
    for seq in gen.get("bad_words_ids", hf.get("bad_words_ids")) or []:
        if isinstance(seq, list) and len(seq) == 1 and seq[0] in marian_to_any2seq:
            ids.add(marian_to_any2seq[seq[0]])
    return tuple(sorted(ids))


def import_marian(folder: Path, out: Path) -> Path:
    """Write the any2seq model directory ``out`` for the MarianMTModel in ``folder``."""
    from ..tasks import get_task

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such directory")
    hf = _read_json(folder / "config.json")
    tok_cfg = _read_json(folder / "tokenizer_config.json", required=False)
    gen = _read_json(folder / "generation_config.json", required=False)
    check_marian(folder, hf, tok_cfg)
    vocab = read_vocab(folder / "vocab.json")
    if len(vocab) != hf["vocab_size"] or vocab["<pad>"] != hf.get("pad_token_id") or vocab["</s>"] != hf.get(
            "eos_token_id") or hf.get("decoder_start_token_id", vocab["<pad>"]) != vocab["<pad>"]:
        raise UserError(f"{folder / 'vocab.json'}: {len(vocab)} pieces and its <pad>/</s> ids do not match "
                        f"config.json (vocab_size {hf['vocab_size']}, pad {hf.get('pad_token_id')}, eos "
                        f"{hf.get('eos_token_id')}, decoder start {hf.get('decoder_start_token_id')})")
    order = any2seq_order(vocab)
    cfg = any2seq_config(hf, tok_cfg, gen, never_output_ids(gen, hf, {m: a for a, m in enumerate(order)}))
    weights = convert_weights(read_checkpoint(folder), hf, torch.tensor(order))
    with new_directory(out) as tmp:
        for name in FILES:
            shutil.copyfile(folder / name, tmp / name)
        task = get_task("translation")
        model = task.build_model(cfg, task.load_tokenizers(cfg, tmp))
        missing, unexpected = model.load_state_dict(weights, strict=False)
        missing = [k for k in missing if k not in ("decoder.embed.tokens.weight", "decoder.proj.weight")]  # tied
        if missing or unexpected:
            raise UserError(f"{folder}: the checkpoint does not fit a Marian model (missing {missing[:3]}, "
                            f"unexpected {unexpected[:3]})")
        write_config(tmp, cfg)
        save_tensors(tmp / "model.safetensors", unique_tensors(model))
        n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        write_card(tmp, {"task": "translation", "input": "text", "output": "text", "encoder": "transformer",
                         "decoder": "transformer", "parameters": n_params, "src_lang": cfg.data.src_lang,
                         "tgt_lang": cfg.data.tgt_lang, "imported_from": {"format": "marian", "path": str(folder)}})
    return Path(out)
