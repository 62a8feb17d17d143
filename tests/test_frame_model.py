"""FrameSeq2Seq: what the frames decoder reads first and in training, and that rollout matches it."""
from __future__ import annotations

import pytest
import torch

from any2seq.config import config_from_dict
from any2seq.data import Items, collate_items
from any2seq.errors import UserError
from any2seq.seq2seq import build_model

FRAME = (1, 8, 8)
TEXT = {"kind": "transformer", "d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.0}
FRAMES = {"kind": "frames", "d_model": 16, "layers": 1, "heads": 2, "ff": 32, "dropout": 0.0, "patch": 4}


def model_with(encoder: dict, **decoder):
    cfg = config_from_dict({"model": {"encoder": encoder, "decoder": {**FRAMES, **decoder}}})
    torch.manual_seed(0)
    return build_model(cfg.model, 10, 0, frame_shape=FRAME).eval()


def text_batch():
    src = Items([[3, 4, 5], [6, 7]], [3, 2], "tokens")
    tgt = Items([torch.rand(3, *FRAME).numpy(), torch.rand(2, *FRAME).numpy()], [3, 2], "sequence")
    return collate_items(src, tgt, [0, 1])


def test_free_running_loss_is_the_error_of_the_rollout():
    model, batch = model_with(TEXT, train_feed="own"), text_batch()
    loss, n = model.loss(batch)
    frames = model.rollout(batch.src, batch.src_lengths, 3, FRAME)
    per_frame = (frames - batch.tgt).square().flatten(2).mean(-1)  # (B, T)
    expected = per_frame[0].sum() + per_frame[1, :2].sum()  # the padded third frame of row 1 never counts
    assert n == 5
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_teacher_forcing_reads_the_true_frames():
    model, batch = model_with(TEXT), text_batch()
    forced, _ = model.loss(batch)
    batch.tgt[:, 1:] = 0.5  # only frames after the first few change what the decoder reads...
    changed, _ = model.loss(batch)
    assert not torch.allclose(forced, changed)


def test_last_input_start_reads_each_videos_own_last_frame():
    video = {"kind": "video", "width": 4, "stages": 1, "d_model": 16, "layers": 0, "heads": 2, "ff": 32,
             "dropout": 0.0}
    model = model_with(video, start="last_input")
    src = torch.rand(2, 3, *FRAME)
    start = model.start_frame(src, torch.tensor([3, 2]), FRAME)
    torch.testing.assert_close(start[:, 0], torch.stack([src[0, 2], src[1, 1]]))


def test_last_input_needs_a_video_encoder():
    with pytest.raises(UserError, match="model.decoder.start"):
        model_with(TEXT, start="last_input")
