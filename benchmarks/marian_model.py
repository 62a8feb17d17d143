"""A MarianMTModel with a MarianTokenizer, built offline (no hub) in the layout of an opus-mt
directory: the HF tests build a tiny one and train it briefly, ``marian_import.py`` an opus-mt-sized
one to time decoding on.

Only the standard library, torch, sentencepiece and (inside ``build_marian``) transformers are
imported, so this runs wherever the HF tests run.
"""
from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
import torch

MULTI30K = Path(__file__).resolve().parents[1] / "data" / "multi30k"


@dataclass(frozen=True)
class MarianShape:
    """The sizes of a MarianMTModel; ``vocab`` is the sentencepiece model's size."""
    d_model: int
    layers: int  # each side
    heads: int
    ffn: int
    vocab: int
    max_positions: int


SHAPES = {
    "tiny": MarianShape(d_model=32, layers=2, heads=4, ffn=64, vocab=320, max_positions=128),
    "opus-mt": MarianShape(d_model=512, layers=6, heads=8, ffn=2048, vocab=8000, max_positions=512),
}


def read_multi30k(split: str, lang: str) -> list[str]:
    with gzip.open(MULTI30K / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def write_tokenizer(folder: Path, texts: list[str], vocab_size: int, dropped_piece: int | None = None) -> None:
    """source.spm = target.spm and a vocab.json laid out as opus-mt's: </s> 0, <unk> 1, ..., <pad> last,
    with two >>xx<< language codes; ``dropped_piece`` (an index into the pieces) is left out of
    vocab.json, so MarianTokenizer reads it as <unk>."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2,
                                   num_threads=1, shuffle_input_sentence=False)
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    if dropped_piece is not None:
        del pieces[dropped_piece]
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in [">>fr<<", ">>de<<", *pieces]:
        vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")


def build_marian(folder: Path, texts: list[str], shape: MarianShape, pairs: list[tuple[str, str]] = (),
                 steps: int = 0, lr: float = 5e-3, seed: int = 0, activation: str = "swish",
                 dropped_piece: int | None = None) -> Path:
    """Save a MarianMTModel (safetensors) of ``shape`` and its tokenizer (trained on ``texts``) in
    ``folder``: random weights, then ``steps`` full-batch AdamW steps on ``pairs`` (0: none)."""
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    write_tokenizer(folder, texts, shape.vocab, dropped_piece)
    tok = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"),
                          source_lang="de", target_lang="en")
    V, pad = len(tok.get_vocab()), tok.pad_token_id
    config = MarianConfig(vocab_size=V, d_model=shape.d_model, encoder_layers=shape.layers,
                          decoder_layers=shape.layers, encoder_attention_heads=shape.heads,
                          decoder_attention_heads=shape.heads, encoder_ffn_dim=shape.ffn, decoder_ffn_dim=shape.ffn,
                          dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, activation_function=activation,
                          scale_embedding=True, pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
                          forced_eos_token_id=0, max_position_embeddings=shape.max_positions)
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    with torch.no_grad():  # a non-zero fixed bias, so an import that drops it shows
        model.final_logits_bias.normal_(0, 0.5)
    if steps:
        train(model, tok, pairs, steps, lr)
    model.eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=pad, eos_token_id=0, pad_token_id=pad,
                                               forced_eos_token_id=0, bad_words_ids=[[pad]], num_beams=4,
                                               max_length=shape.max_positions)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def train(model, tok, pairs: list[tuple[str, str]], steps: int, lr: float) -> None:
    """Full-batch AdamW on ``pairs``: enough for the outputs to end in </s> at varied lengths."""
    batch = tok([s for s, _ in pairs], text_target=[t for _, t in pairs], padding=True, return_tensors="pt")
    batch["labels"] = batch["labels"].masked_fill(batch["labels"] == tok.pad_token_id, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
