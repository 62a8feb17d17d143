"""A tiny MarianMTModel with a MarianTokenizer, built and trained offline (no hub) in seconds.

The model memorises short Multi30k pairs for a few hundred steps, so its outputs (on these and
on other sentences) end in </s> at varied lengths, as a real opus-mt model's do.
"""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import sentencepiece as spm
import torch

MULTI30K = Path(__file__).resolve().parents[2] / "data" / "multi30k"
VOCAB = 320


def short_pairs() -> list[tuple[str, str]]:
    """Multi30k training pairs of at most 32 characters a side."""
    sides = []
    for lang in ("de", "en"):
        with gzip.open(MULTI30K / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
            sides.append([line.rstrip("\n") for line in f])
    return [(de, en) for de, en in zip(*sides) if len(de) <= 32 and len(en) <= 32]

DROPPED_PIECE_INDEX = 200  # one spm piece left out of vocab.json: MarianTokenizer reads it as <unk>


def write_tokenizer(folder: Path, texts: list[str]) -> None:
    """source.spm = target.spm and a vocab.json laid out as opus-mt's: </s> 0, <unk> 1, ..., <pad> last,
    with two >>xx<< language codes and one spm piece missing."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=model, vocab_size=VOCAB,
                                   model_type="unigram", character_coverage=1.0, minloglevel=2,
                                   num_threads=1, shuffle_input_sentence=False)
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_control(i) or sp.is_unknown(i))]
    del pieces[DROPPED_PIECE_INDEX]
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in [">>fr<<", ">>de<<", *pieces]:
        vocab[piece] = len(vocab)
    vocab["<pad>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")


def build_tiny_marian(folder: Path, pairs: list[tuple[str, str]], steps: int = 120, seed: int = 0,
                      activation: str = "swish", train_pairs: int = 24) -> Path:
    """Save a trained tiny MarianMTModel (safetensors) and its tokenizer in ``folder``."""
    from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    write_tokenizer(folder, [t for pair in pairs for t in pair])
    tok = MarianTokenizer(str(folder / "source.spm"), str(folder / "target.spm"), str(folder / "vocab.json"),
                          source_lang="de", target_lang="en")
    V, pad = len(tok.get_vocab()), tok.pad_token_id
    config = MarianConfig(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                          decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, dropout=0.0,
                          attention_dropout=0.0, activation_dropout=0.0, activation_function=activation,
                          scale_embedding=True, pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
                          forced_eos_token_id=0, max_position_embeddings=128)
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    with torch.no_grad():  # a non-zero fixed bias, so the test sees it carried over
        model.final_logits_bias.normal_(0, 0.5)
    src = [s for s, _ in pairs[:train_pairs]]
    tgt = [t for _, t in pairs[:train_pairs]]
    batch = tok(src, text_target=tgt, padding=True, return_tensors="pt")
    batch["labels"] = batch["labels"].masked_fill(batch["labels"] == pad, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=pad, eos_token_id=0, pad_token_id=pad,
                                               forced_eos_token_id=0, bad_words_ids=[[pad]], num_beams=4,
                                               max_length=128)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
