"""A ``tokenizer.json`` (the ``tokenizers`` library's format) that encodes exactly as an any2seq
sentencepiece model does, so ``AutoTokenizer.from_pretrained`` gives the ids the model was
trained on: the same pieces and ids (``<pad> <s> </s> <unk>`` at 0-3), sentencepiece's normaliser
(its precompiled character map, whitespace rules and dummy prefix), unigram scores or BPE merges
ranked by piece score, as transformers' own sentencepiece converter builds them.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..fileio import atomic_write

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


def _proto(model_bytes: bytes):
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:  # it needs protobuf
        raise UserError("export --hf needs protobuf to read the sentencepiece model: pip install 'any2seq[hf]'") \
            from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_bytes)
    return proto


def _model(proto):
    from tokenizers.models import BPE, Unigram

    kind = proto.trainer_spec.model_type  # 1 unigram, 2 bpe, 3 word, 4 char
    if kind == 1:
        return Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=proto.trainer_spec.unk_id,
                       byte_fallback=proto.trainer_spec.byte_fallback)
    if kind == 2:
        vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
        normal = {p.piece: (p.score, i) for i, p in enumerate(proto.pieces) if p.type == 1}
        ranked = sorted((-normal[t][0], normal[t][1], t[:k], t[k:]) for t in normal for k in range(1, len(t))
                        if t[:k] in normal and t[k:] in normal)
        return BPE(vocab=vocab, merges=[(a, b) for _, _, a, b in ranked], unk_token=proto.trainer_spec.unk_piece,
                   fuse_unk=True, byte_fallback=proto.trainer_spec.byte_fallback)
    raise UserError(f"tokenizer.kind: a sentencepiece {'word' if kind == 3 else 'char'} model has no tokenizer.json "
                    "counterpart here; export --hf takes bpe and unigram tokenizers")


def build(model_bytes: bytes, source_eos: bool):
    """The ``tokenizers.Tokenizer`` of a sentencepiece model; with ``source_eos`` it appends </s>."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors

    proto = _proto(model_bytes)
    tok = Tokenizer(_model(proto))
    spec = proto.normalizer_spec
    steps = [normalizers.Precompiled(spec.precompiled_charsmap)] if spec.precompiled_charsmap else []
    if spec.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "\u2581"))
    if spec.add_dummy_prefix:
        steps.append(normalizers.Replace(Regex("\\A\u2581"), "\u2581\u2581"))
    tok.normalizer = normalizers.Sequence(steps)
    if spec.add_dummy_prefix:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    parts = [decoders.Replace("\u2581", " ")]
    if spec.add_dummy_prefix:
        parts += [decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    tok.decoder = decoders.Sequence(parts)
    if source_eos:
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return tok


def write_spm_tokenizer(spm_tokenizer, folder: Path, source_eos: bool = False) -> None:
    """tokenizer.json and tokenizer_config.json for ``AutoTokenizer`` (a ``PreTrainedTokenizerFast``)."""
    tok = build(spm_tokenizer.model_bytes, source_eos)
    atomic_write(Path(folder) / "tokenizer.json", tok.to_str())
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "bos_token": "<s>",
              "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 1024,
              "clean_up_tokenization_spaces": False,
              "model_input_names": ["input_ids", "attention_mask"]}  # no token_type_ids: generate(**batch) refuses them
    atomic_write(Path(folder) / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
