"""Cross-attention maps of a trained model (the alignment plots of Bahdanau et al., 2015, Fig. 3):
the decoder is teacher-forced through a chosen output and its attention over the source recorded."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data.batching import pad_items
from .errors import UserError
from .tasks import get_task


def _source(predictor, source):
    """One user input -> (src (1, ...), src_lengths (1,) or None, the model input after reading)."""
    cfg, toks, task = predictor.cfg, predictor.toks, get_task(predictor.task)
    inputs = task.read_inputs(cfg, [source])
    items = task.source_items(cfg, toks, inputs)
    if items.lengths[0] == 0:
        raise UserError("input 1: the input is empty; there is nothing to attend to")
    src, src_lengths = pad_items(items, [0], eos=False)
    return src, src_lengths, inputs[0]


def _source_labels(predictor, model_input, src, S: int) -> list[str]:
    """Names of the S memory positions: subword pieces, grid cells r{row}c{col}, or frames t{i}."""
    kind = predictor.input_kind
    if kind == "text":
        pieces = predictor.toks.src.pieces(model_input)
        if len(pieces) == S:
            return pieces
        if len(pieces) + 1 == S:  # an encoder that appends </s> (model.encoder.eos)
            return [*pieces, "</s>"]
    grid = getattr(predictor.model.encoder, "grid", None)
    if kind == "image" and grid is not None:
        rows, cols = grid(src.size(-2), src.size(-1))
        if rows * cols == S:
            return [f"r{r}c{c}" for r in range(rows) for c in range(cols)]
    if kind == "video" and grid is not None:
        rows, cols = grid(src.size(-2), src.size(-1))
        frames = src.size(1)
        if frames * rows * cols == S:
            return [f"t{t}r{r}c{c}" for t in range(frames) for r in range(rows) for c in range(cols)]
    prefix = "t" if kind in ("audio", "video") else "s"
    return [f"{prefix}{i}" for i in range(S)]


def _check(predictor):
    """The decoder's ``cross_attention`` method, or a UserError saying why there is none."""
    if predictor.output_kind != "text":
        raise UserError(f"attention maps need a model with text output; this {predictor.task} model makes frames")
    cross_attention = getattr(predictor.model.decoder, "cross_attention", None)
    if cross_attention is None:
        raise UserError("this model's decoder has no attention")
    return cross_attention


def has_attention(predictor) -> bool:
    """Whether ``attention_maps`` can work for this model (text output, a decoder with attention)."""
    decoder = predictor.model.decoder
    return (predictor.output_kind == "text" and hasattr(decoder, "cross_attention")
            and getattr(decoder, "attention", True) is not None)


def attention_maps(predictor, source, output_text: str) -> dict:
    """Cross-attention of a teacher-forced pass over ``output_text`` given ``source``.

    Returns {"weights": (layers, heads, T_out, S_src) float32, "src_labels", "tgt_labels"}: row t
    is where the decoder looked while predicting output piece t (the last row predicts </s>).
    """
    cross_attention = _check(predictor)
    model = predictor.model
    if not isinstance(output_text, str):
        raise UserError(f"the output to plot must be text, got {type(output_text).__name__}")
    src, src_lengths, model_input = _source(predictor, source)
    out_ids = predictor.toks.tgt.encode([output_text])[0]
    device = predictor.device
    X = torch.tensor([[model.bos, *out_ids]], dtype=torch.long, device=device)  # (1, T): <s> y, predicting y </s>
    model.eval()
    with torch.inference_mode():
        state = model.encode(src.to(device), None if src_lengths is None else src_lengths.to(device))
        maps = cross_attention(X, state)  # (layers, 1, H, T, S)
    if maps is None:
        raise UserError("this model's decoder has no attention")
    weights = maps[:, 0].float().cpu().numpy().astype(np.float32)  # (layers, H, T, S)
    tgt_labels = predictor.toks.tgt.pieces(output_text) if out_ids else []
    if len(tgt_labels) != len(out_ids):
        tgt_labels = [predictor.toks.tgt.id_to_piece(i) for i in out_ids]
    return {"weights": weights, "src_labels": _source_labels(predictor, model_input, src, weights.shape[-1]),
            "tgt_labels": [*tgt_labels, "</s>"]}


def _text_inputs(inputs: list[str]) -> list[str]:
    """Text models' ``--input``s: a sentence, or a text file whose non-empty lines are sentences."""
    from .data.text import read_lines  # UTF-8 (or .gz); a bad byte is a UserError naming the line

    texts = []
    for item in inputs:
        path = Path(item)
        if "\n" not in item and len(item) < 4096 and path.is_file():
            texts.extend(line for line in read_lines(path) if line)
        else:
            texts.append(item)
    return texts


def cmd_plot_attention(model_dir, inputs: list[str], out: Path, layer=None, head=None) -> int:
    """``any2seq plot attention``: the first output's attention map for each input, as PNGs.

    One input writes ``out``; several write ``out``'s name with -1, -2, ... before the suffix.
    """
    from . import load
    from .fileio import writable_dir
    from .plots import plot_attention

    if not inputs:
        raise UserError("--input: give at least one input")
    for flag, value in (("--layer", layer), ("--head", head)):
        if value is not None and value < 0:
            raise UserError(f"{flag}: counted from 0, got {value}")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory; name a PNG file")
    writable_dir(out.parent, name=f"--out {out}")
    predictor = load(model_dir)
    _check(predictor)
    if predictor.input_kind == "text":
        inputs = _text_inputs(inputs)
        if not inputs:
            raise UserError("--input: the files hold no lines to plot")
    results = predictor.predict(list(inputs))
    for i, (source, result) in enumerate(zip(inputs, results), start=1):
        maps = attention_maps(predictor, source, result["outputs"][0]["text"])
        path = out if len(inputs) == 1 else out.with_name(f"{out.stem}-{i}{out.suffix or '.png'}")
        plot_attention(maps, path, layer, head)
        print(path)
    return 0
