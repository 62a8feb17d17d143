"""Export to CTranslate2 (Klein et al., 2020, "Efficient and High-Quality Neural Machine Translation
with OpenNMT"): an any2seq Transformer becomes a ``ctranslate2.specs.TransformerSpec`` model
directory, and ``translate_ct2`` decodes with ``ctranslate2.Translator``.

The mapping follows from the any2seq layers: pre-LN blocks with a final LayerNorm on each side
(or post-LN blocks without one), fused q|k|v self-attention and fused k|v cross-attention
projections, the feed-forward's activation, token embeddings scaled by sqrt(D) plus a position
table (sinusoidal or learned, given to CTranslate2 as an explicit table, so both kinds export), and
the output projection (with its bias, if any). The source gets </s> if the encoder appends it
(``eos``), the decoder starts from the model's start token, and ``never_output`` pieces are
suppressed (CTranslate2 removes them before the softmax, any2seq after it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from torch import nn

from ..config import Config
from ..errors import UserError, preview
from ..fileio import atomic_write, check_new_dir, read_regular, staged_dir
from ..nn.embedding import sinusoids
from ..hf.tokenizer import FILES as MARIAN_FILES
from ..tasks.base import JOINT, SRC, TGT

EXPORT_INFO = "any2seq_export.json"  # beside CTranslate2's files: which tokenizers, how to decode
FORMAT = 1
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which every any2seq LayerNorm uses


def _ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise UserError("ctranslate2 is not installed; install it with: pip install 'any2seq[ct2]'") from None
    return ctranslate2


def check_exportable(cfg: Config, model_dir: Path) -> None:
    """A one-line UserError naming the config key when CTranslate2 cannot run this model."""
    where = model_dir / "config.yaml"
    enc, dec = cfg.model.encoder, cfg.model.decoder
    if cfg.task != "translation":
        raise UserError(f"{where}: task: only translation models export to CTranslate2, not {cfg.task}")
    if enc.kind != "transformer" or dec.kind != "transformer":
        raise UserError(f"{where}: model.encoder.kind/decoder.kind: CTranslate2 export needs a Transformer "
                        f"encoder and decoder, not {enc.kind} + {dec.kind}")
    if enc.d_model != dec.d_model:
        raise UserError(f"{where}: model.decoder.d_model: CTranslate2 needs equal encoder and decoder widths "
                        f"(encoder {enc.d_model}, decoder {dec.d_model})")
    if (enc.norm, enc.activation) != (dec.norm, dec.activation):
        raise UserError(f"{where}: model.decoder.norm/activation: CTranslate2 needs the encoder's "
                        f"({enc.norm}, {enc.activation}), not ({dec.norm}, {dec.activation})")
    if enc.heads != dec.heads:
        raise UserError(f"{where}: model.decoder.heads: CTranslate2 needs equal head counts "
                        f"(encoder {enc.heads}, decoder {dec.heads})")


def _np(t) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _linear(spec, layer) -> None:
    spec.weight = _np(layer.weight)
    if layer.bias is not None:
        spec.bias = _np(layer.bias)


def _norm(spec, layer) -> None:
    spec.gamma, spec.beta = _np(layer.weight), _np(layer.bias)


def _embedding(spec, token_spec, embed, max_positions: int) -> None:
    """Token table and positions: CTranslate2 scales the tokens by sqrt(D) and adds row t at step t."""
    token_spec.weight = _np(embed.tokens.weight)
    table = embed.positions.weight if embed.learned else embed.table
    if not embed.learned and table.size(0) < max_positions:  # a longer sinusoid table than training used
        table = sinusoids(max_positions, table.size(1))
    spec.position_encodings.encodings = _np(table)
    spec.scale_embeddings = True


def _set_encoder(spec, encoder, max_positions: int) -> None:
    _embedding(spec, spec.embeddings[0], encoder.embed, max_positions)
    for layer_spec, layer in zip(spec.layer, encoder.layers):
        _linear(layer_spec.self_attention.linear[0], layer.attn.qkv)  # q|k|v fused, the same order
        _linear(layer_spec.self_attention.linear[1], layer.attn.out)
        _norm(layer_spec.self_attention.layer_norm, layer.norm1)
        _feed_forward(layer_spec.ffn, layer.ff, layer.norm2)
    if isinstance(encoder.norm, nn.LayerNorm):  # pre-LN
        _norm(spec.layer_norm, encoder.norm)


def _set_decoder(spec, decoder, max_positions: int) -> None:
    _embedding(spec, spec.embeddings, decoder.embed, max_positions)
    for layer_spec, layer in zip(spec.layer, decoder.layers):
        _linear(layer_spec.self_attention.linear[0], layer.self_attn.qkv)
        _linear(layer_spec.self_attention.linear[1], layer.self_attn.out)
        _norm(layer_spec.self_attention.layer_norm, layer.norm1)
        _linear(layer_spec.attention.linear[0], layer.cross_attn.q)
        _linear(layer_spec.attention.linear[1], layer.cross_attn.kv)  # k|v fused, the same order
        _linear(layer_spec.attention.linear[2], layer.cross_attn.out)
        _norm(layer_spec.attention.layer_norm, layer.norm2)
        _feed_forward(layer_spec.ffn, layer.ff, layer.norm3)
    if isinstance(decoder.norm, nn.LayerNorm):  # pre-LN
        _norm(spec.layer_norm, decoder.norm)
    _linear(spec.projection, decoder.proj)


def _feed_forward(spec, ff, norm) -> None:
    _linear(spec.linear_0, ff[0])  # Linear, activation, Linear
    _linear(spec.linear_1, ff[2])
    _norm(spec.layer_norm, norm)


def _vocabulary(tok) -> list[str]:
    return [tok.id_to_piece(i) for i in range(tok.vocab_size)]


def build_spec(model, toks, cfg: Config, max_positions: int = 1024):
    """The ``TransformerSpec`` holding ``model``'s weights and the tokenizers' vocabularies."""
    _ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec

    enc, dec = cfg.model.encoder, cfg.model.decoder
    activation = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU,
                  "swish": common_spec.Activation.SWISH}[enc.activation]
    spec = transformer_spec.TransformerSpec.from_config(
        (enc.layers, dec.layers), enc.heads, pre_norm=enc.norm == "pre", activation=activation)
    _set_encoder(spec.encoder, model.encoder, max_positions)
    _set_decoder(spec.decoder, model.decoder, max_positions)
    spec.register_source_vocabulary(_vocabulary(toks.src))
    spec.register_target_vocabulary(_vocabulary(toks.tgt))
    spec.config.layer_norm_epsilon = LAYER_NORM_EPS
    spec.config.add_source_eos = enc.eos  # the encoder appends </s> itself, or the source has none
    spec.config.eos_token = toks.tgt.id_to_piece(model.eos)
    spec.config.decoder_start_token = toks.tgt.id_to_piece(model.bos)
    return spec


def export_ct2(model_dir: Path, out_dir: Path) -> Path:
    """Convert the any2seq model in ``model_dir`` into a CTranslate2 model directory ``out_dir``.

    ``out_dir`` must not exist or be empty; it is written under a temporary name and renamed, so a
    failed export leaves nothing behind. Returns ``out_dir``.
    """
    from ..modeldir import load_model, read_card, read_config

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    _ctranslate2()
    read_card(model_dir)  # a clear error for a folder that is not a model directory
    cfg = read_config(model_dir)
    check_exportable(cfg, model_dir)
    check_new_dir(out_dir)
    model, toks, cfg, _ = load_model(model_dir, "cpu")
    spec = build_spec(model, toks, cfg)
    try:
        spec.validate()
        spec.optimize(quantization=None)  # float32; CTranslate2 can still run it as int8 (compute_type)
    except (ValueError, TypeError) as e:
        raise UserError(f"{model_dir}: CTranslate2 rejected the converted model ({e})") from None
    with staged_dir(out_dir) as tmp:
        spec.save(str(tmp))
        joint = cfg.tokenizer.joint
        names = {"src": JOINT, "tgt": JOINT} if joint else {"src": SRC, "tgt": TGT}
        if cfg.tokenizer.kind == "marian":
            names = {"src": "marian", "tgt": "marian"}
        for name in MARIAN_FILES if cfg.tokenizer.kind == "marian" else set(names.values()):
            atomic_write(tmp / name, (model_dir / name).read_bytes())  # loaded by load_model above: regular files
        suppress = [toks.tgt.id_to_piece(i) for i in cfg.model.decoder.never_output]
        info = {"format": FORMAT, "tokenizers": names, "suppress": suppress,
                "src_lang": cfg.data.src_lang, "tgt_lang": cfg.data.tgt_lang,
                "decode": {"beam": cfg.decode.beam, "length_penalty": cfg.decode.length_penalty,
                           "max_len_a": cfg.decode.max_len_a, "max_len_b": cfg.decode.max_len_b}}
        atomic_write(tmp / EXPORT_INFO, json.dumps(info, indent=2) + "\n")
    return out_dir


def _read_info(model_dir: Path) -> dict:
    path = model_dir / EXPORT_INFO
    data = read_regular(path, 1 << 20, missing=f"missing; is {model_dir} a directory written by `any2seq export`?")
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UserError(f"{path}: not readable ({e.__class__.__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        found = preview(info.get("format")) if isinstance(info, dict) else f"? (a {type(info).__name__})"
        raise UserError(f"{path}: export format {found}; this any2seq reads format {FORMAT}")
    return info


class CT2Translator:
    """A loaded CTranslate2 export with its sentencepiece model(s): lines in, lines out."""

    def __init__(self, model_dir: Path, threads: int = 0, compute_type: str = "default", device: str = "cpu",
                 workers: int = 1):
        """``workers`` > 1: that many batches at once (CTranslate2's ``inter_threads``), sharing
        ``threads`` (0: every core this process may use) among them."""
        from ..data.tokenizer import Tokenizer

        ctranslate2 = _ctranslate2()
        self.dir = Path(model_dir)
        self.info = _read_info(self.dir)
        names = self.info["tokenizers"]
        if names["src"] == "marian":  # an imported Marian model's vocabulary
            from ..hf.tokenizer import MarianTokenizer

            self.src, self.tgt = MarianTokenizer(self.dir, "source"), MarianTokenizer(self.dir, "target")
        else:
            self.src = Tokenizer.load(self.dir / names["src"])
            self.tgt = self.src if names["tgt"] == names["src"] else Tokenizer.load(self.dir / names["tgt"])
        self.suppress = [[piece] for piece in self.info.get("suppress", [])] or None
        if workers > 1:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            threads = max(1, (threads or cores) // workers)
        try:
            self.translator = ctranslate2.Translator(str(self.dir), device=device, compute_type=compute_type,
                                                     inter_threads=workers, intra_threads=threads)
        except (RuntimeError, ValueError) as e:
            raise UserError(f"{self.dir}: CTranslate2 cannot load it ({str(e).splitlines()[0]})") from None

    def translate(self, lines: list[str], beam: int = 5, n_best: int = 1, max_len: int = 256,
                  batch_size: int = 32, length_penalty: float | None = None) -> list[str] | list[list[str]]:
        """As ``Predictor.translate``: per-sentence output limits a * source length + b (capped at
        ``max_len``), sentences decoded longest first in batches of ``batch_size``."""
        if n_best > beam:
            raise UserError(f"--n-best: {n_best} is more than --beam {beam}")
        decode = self.info["decode"]
        lp = decode["length_penalty"] if length_penalty is None else length_penalty
        pieces = [self.src.pieces(line) for line in lines]
        limits = [max(1, min(max_len, int(len(p) * decode["max_len_a"] + decode["max_len_b"]))) for p in pieces]
        order = sorted(range(len(lines)), key=lambda i: -len(pieces[i]))
        order = [i for i in order if pieces[i]]  # an empty source gets empty output, as in any2seq
        out: list[list[str]] = [[""] * n_best for _ in lines]
        chunks = [order[start: start + batch_size] for start in range(0, len(order), batch_size)]
        pending = [self.translator.translate_batch(  # queued at once, so every worker has a batch
            [pieces[i] for i in chunk], beam_size=beam, num_hypotheses=n_best, length_penalty=lp,
            max_decoding_length=max(limits[i] for i in chunk), return_scores=False, asynchronous=True,
            suppress_sequences=self.suppress)
            for chunk in chunks]
        for chunk, results in zip(chunks, pending):
            for i, result in zip(chunk, results):
                # The batch shares one limit: cut each output at its own, as any2seq's search does.
                hyps = [self.tgt.decode_pieces(hyp[: limits[i]]) for hyp in result.result().hypotheses]
                out[i] = hyps + [""] * (n_best - len(hyps))
        return [o[0] for o in out] if n_best == 1 else out


def translate_ct2(model_dir_ct2: Path, lines: list[str], beam: int = 5, n_best: int = 1, max_len: int = 256,
                  batch_size: int = 32) -> list[str] | list[list[str]]:
    """Translate ``lines`` with a CTranslate2 export of an any2seq model (see ``export_ct2``)."""
    return CT2Translator(Path(model_dir_ct2)).translate(lines, beam, n_best, max_len, batch_size)
