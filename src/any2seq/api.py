"""The Python API: ``any2seq.load(DIR)`` gives a ``Predictor`` for a model of any task."""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import torch

from .config import Config
from .errors import UserError
from .inference import SearchOptions
from .modeldir import load_model
from .nn.int8 import quantize_linears
from .nn.packed import pack_linears, packing_pays
from .precision import DECODE_PRECISIONS, DECODE_ROWS, Choice, choose, linear_shapes, normalize
from .seq2seq import output_limit, within_positions
from .tasks import get_task


class Predictor:
    """A trained model with its tokenizers and task, ready to predict.

    ``predict`` takes strings (text models), or file paths or raw bytes (image, audio and video
    models), and returns one dict per input: ``{"outputs": [{"text", "score"}, ...]}`` for text
    output, ``{"frames": (T, C, H, W) array}`` for frame output.
    """

    def __init__(self, model, toks, cfg, card: dict, device="cpu"):
        self.model, self.toks, self.cfg, self.card, self.device = model, toks, cfg, card, device
        self.task = cfg.task
        self._task = get_task(cfg.task)
        self.input_kind, self.output_kind = self._task.input_kind, self._task.output_kind
        self.precision = Choice("fp32" if next(model.parameters()).dtype == torch.float32 else "bf16", "given")

    def options(self, beam: int | None = None, n_best: int = 1, length_penalty: float | None = None,
                sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                max_len: int = 256, seed: int = 0) -> SearchOptions:
        """Search options, the config's decode section filling what is not given; validated."""
        d = self.cfg.decode
        opts = SearchOptions(beam=d.beam if beam is None else beam, n_best=n_best,
                             length_penalty=d.length_penalty if length_penalty is None else length_penalty,
                             sample=sample, temperature=temperature, top_k=top_k, top_p=top_p, max_len=max_len,
                             max_len_a=d.max_len_a, max_len_b=d.max_len_b, seed=seed)
        # A decoder with learned positions has none past its table: outputs stop there.
        return replace(opts, max_len=output_limit(self.cfg, opts.max_len))

    def predict(self, inputs: list, progress: bool = False, batch_tokens: int | None = None,
                batch_size: int | None = None, workers: int | None = None, max_src_len: int | None = None,
                **options) -> list[dict]:
        """One result per input, in input order (see the class docstring). ``batch_tokens``,
        ``batch_size``, ``workers`` and ``max_src_len`` override the config's decode section
        (``DecodeConfig``); a text source longer than ``max_src_len`` tokens is cut to it, with a
        warning on the ``any2seq`` logger."""
        if isinstance(inputs, (str, bytes)):
            raise TypeError("predict() takes a list of inputs")
        opts = self.options(**options)
        cfg = self._batched(batch_tokens, batch_size, workers, max_src_len)
        model_inputs = self._task.read_inputs(cfg, list(inputs))
        if self.input_kind == "text":
            check_text(model_inputs)
        return self._task.predict(self.model, self.toks, cfg, model_inputs, opts, self.device, progress)

    def translate(self, lines: list[str], beam: int | None = None, n_best: int = 1,
                  length_penalty: float | None = None, sample: bool = False, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, max_len: int = 256, batch_tokens: int | None = None,
                  seed: int = 0, progress: bool = False, batch_size: int | None = None,
                  workers: int | None = None, max_src_len: int | None = None) -> list[str] | list[list[str]]:
        """Text outputs in input order: one string per input, or lists of ``n_best`` strings.
        ``workers=2`` decodes two batches at once (see ``inference.decode_items``): faster for a
        file of many batches on a CPU with two cores or more."""
        if isinstance(lines, str):
            raise TypeError("translate() takes a list of strings")
        if self.output_kind != "text":
            raise TypeError(f"translate() needs a model with text output; this {self.task} model makes frames")
        results = self.predict(lines, progress, batch_tokens, batch_size, workers, max_src_len, beam=beam,
                               n_best=n_best,
                               length_penalty=length_penalty, sample=sample, temperature=temperature, top_k=top_k,
                               top_p=top_p, max_len=max_len, seed=seed)
        texts = [[o["text"] for o in r["outputs"]] for r in results]
        return [t[0] for t in texts] if n_best == 1 else texts

    def evaluate(self, split: str = "test", progress: bool = False, batch_tokens: int | None = None,
                 batch_size: int | None = None, workers: int | None = None, max_src_len: int | None = None,
                 **options) -> tuple[dict, list]:
        """The task's metrics on a split of the data its config names, and the outputs."""
        opts = self.options(**options)
        cfg = self._batched(batch_tokens, batch_size, workers, max_src_len)
        return self._task.evaluate(self.model, self.toks, cfg, split, opts, self.device, progress)

    def _batched(self, batch_tokens: int | None, batch_size: int | None, workers: int | None,
                 max_src_len: int | None = None) -> Config:
        """The config with the decode section's batching overridden where given (checked when decoding),
        and the source cap lowered to the encoder's learned positions, past which it has none."""
        given = {k: v for k, v in (("batch_tokens", batch_tokens), ("batch_size", batch_size),
                                   ("workers", workers), ("max_src_len", max_src_len)) if v is not None}
        decode = replace(self.cfg.decode, **given)
        return within_positions(replace(self.cfg, decode=decode) if decode != self.cfg.decode else self.cfg)


def check_text(inputs: list[str]) -> None:
    """Text that UTF-8 can carry: a lone surrogate (e.g. JSON "\\ud800") would fail in the tokenizer."""
    for i, text in enumerate(inputs):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"input {i + 1}: not valid Unicode text (a lone surrogate)") from None


Translator = Predictor  # the name the text-only API had


def load(path, device="cpu", dtype: str = "auto") -> Predictor:
    """The model in directory ``path``, ready to decode. ``dtype``: ``"auto"`` (default) times the
    model's products in float32 and bf16 on this machine and decodes in the faster (precision.py;
    frame outputs stay float32); ``"fp32"``/``"float32"`` or ``"bf16"``/``"bfloat16"`` force one
    (bf16 for text outputs only); ``"int8"`` (opt-in, CPU, text outputs) multiplies by int8 weights
    (``nn/int8.py``: faster on some CPUs, outputs not float32's). ``Predictor.precision`` says what
    was chosen and why. On CPU the float linear layers multiply by oneDNN-prepacked weights
    (``nn/packed.py``)."""
    dtype = normalize(dtype, "dtype", DECODE_PRECISIONS)
    if dtype == "int8" and torch.device(device).type != "cpu":
        raise UserError(f"--dtype int8: for decoding on a CPU; on {device} use fp32 or bf16")
    model, toks, cfg, card = load_model(Path(path), device)
    text_output = get_task(cfg.task).output_kind == "text"
    if dtype in ("bf16", "int8") and not text_output:
        raise UserError(f"{dtype} decoding is for models with text output; this {cfg.task} model makes frames")
    if dtype == "auto" and not text_output:
        choice = Choice("fp32", "frame outputs decode in float32")
    elif dtype == "int8":
        choice = Choice("int8", "forced")
    else:
        choice = choose(dtype, linear_shapes(model), DECODE_ROWS, device, train=False)
    model.to(choice.dtype)
    if choice.precision == "int8":
        quantize_linears(model)
    elif torch.device(device).type == "cpu":
        # prepacked oneDNN weights, for the layers whose products they make faster here (nn/packed.py)
        pack_linears(model, functools.partial(packing_pays, rows=DECODE_ROWS))
    predictor = Predictor(model, toks, cfg, card, device=device)
    predictor.precision = choice
    return predictor
