"""Tiny random Hugging Face encoders, saved as ``save_pretrained`` writes them (built offline from
configs): what the ``kind: hf`` tiny configs point at."""
from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def quiet_transformers() -> None:
    """No "Writing model shards" bars: the folders are built inside whichever test first asks for them,
    whose captured stderr must hold only what any2seq printed."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def vit_image_processor():
    """ViT's PIL image processor class. transformers 5 names it ViTImageProcessorPil (its ViTImageProcessor
    wants torchvision, which the test extras leave out, and warns on stderr as it falls back); 4.x has no
    ViTImageProcessorPil, and its ViTImageProcessor is the PIL one."""
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return transformers.ViTImageProcessorPil
    return transformers.ViTImageProcessor


def save_vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTModel

    quiet_transformers()

    torch.manual_seed(0)
    ViTModel(ViTConfig(**SMALL, image_size=32, patch_size=8)).save_pretrained(folder)
    vit_image_processor()(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def save_clip_vision(folder: Path) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    quiet_transformers()
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**SMALL, image_size=32, patch_size=8)).save_pretrained(folder)
    return folder


def save_wav2vec2(folder: Path) -> Path:
    """Three convolutions of 320x total stride (as wav2vec2's seven): 50 positions a second at 16 kHz."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    quiet_transformers()
    torch.manual_seed(0)
    config = Wav2Vec2Config(**SMALL, conv_dim=(16, 16, 16), conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, mask_time_length=2,
                            vocab_size=12)
    Wav2Vec2ForCTC(config).save_pretrained(folder)  # weights under wav2vec2.*, as a fine-tuned checkpoint's
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=False)
    extractor.save_pretrained(folder)
    return folder


def save_whisper(folder: Path) -> Path:
    """A 4 s window (400 frames, 200 encoder positions) of 16 mel bands."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    quiet_transformers()
    torch.manual_seed(0)
    config = WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, num_mel_bins=16,
                           max_source_positions=200, max_target_positions=16, vocab_size=64, pad_token_id=0,
                           bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, suppress_tokens=[],
                           begin_suppress_tokens=[])
    WhisperForConditionalGeneration(config).save_pretrained(folder)  # the encoder under model.encoder.*
    WhisperFeatureExtractor(feature_size=16, chunk_length=4).save_pretrained(folder)
    return folder


def german_words(n: int = 600) -> list[str]:
    with gzip.open(ROOT / "data" / "multi30k" / "train.de.gz", "rt", encoding="utf-8") as f:
        counts = Counter(w for line in f for w in line.lower().split())
    return [w for w, _ in counts.most_common(n)]


def save_bert(folder: Path) -> Path:
    """A WordPiece vocabulary of frequent German words and single characters, and a tiny BERT."""
    from transformers import BertConfig, BertModel, BertTokenizer

    quiet_transformers()
    folder.mkdir(parents=True, exist_ok=True)
    chars = sorted({c for w in german_words(3000) for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    vocab += [w for w in german_words() if w not in set(vocab)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(**SMALL, vocab_size=len(vocab), max_position_embeddings=128)).save_pretrained(folder)
    return folder


SAVERS = {"vit": save_vit, "clip": save_clip_vision, "wav2vec2": save_wav2vec2, "whisper": save_whisper,
          "bert": save_bert}
