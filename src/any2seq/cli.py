"""The command line: ``any2seq train | translate | predict | evaluate | info | download | average |
export | import-hf | serve | plot`` (``COMMANDS``; ``any2seq CMD --help`` shows each one's examples)."""
from __future__ import annotations

import argparse
import errno
import json
import math
import sys
from pathlib import Path

from .errors import UserError

EXAMPLES = {
    "train": """examples:
  any2seq train configs/multi30k_de_en_transformer.yaml
  any2seq train configs/demo.yaml --set train.lr=3e-4 --set train.max_minutes=5 --out runs/try
  any2seq train configs/demo.yaml --out runs/demo --resume
  torchrun --nproc_per_node 2 -m any2seq train configs/demo.yaml --out runs/ddp""",
    "translate": """examples:
  echo "Ein Hund läuft über die Wiese." | any2seq translate --model runs/demo
  any2seq translate --model runs/demo --beam 5 --n-best 3 < input.de
  any2seq translate --model runs/demo --sample --temperature 0.8 --top-p 0.9 < input.de
  any2seq translate --model runs/demo-ct2 --engine ct2 --beam 5 < input.de   # an `any2seq export --ct2` model""",
    "export": """examples:
  any2seq export --ct2 runs/demo runs/demo-ct2    # then: any2seq translate --model runs/demo-ct2 --engine ct2
  any2seq export --hf runs/demo runs/demo-hf      # then: AutoModelForSeq2SeqLM.from_pretrained("runs/demo-hf")""",
    "import-hf": """examples:
  any2seq import-hf opus-mt-de-en --out runs/opus-de-en   # a local MarianMTModel directory (no download)
  echo "Ein Hund läuft." | any2seq translate --model runs/opus-de-en""",
    "predict": """examples:
  any2seq predict --model runs/captioning scene1.png scene2.png
  any2seq predict --model runs/speech utterance.wav --beam 5 --n-best 3
  any2seq predict --model runs/video_prediction clip.gif --out predicted/
  echo "dog grass run" | any2seq predict --model runs/text_generation --sample --top-p 0.9""",
    "evaluate": """examples:
  any2seq evaluate --model runs/speech --split test --json
  any2seq evaluate --model runs/video_prediction_rollout --split test --strip predicted.png
  any2seq evaluate --model runs/demo --src data/multi30k/test_2016_flickr.de.gz --ref data/multi30k/test_2016_flickr.en.gz
  any2seq evaluate --model runs/demo --src test.de --ref test.en --beam 5 --json
  any2seq evaluate --model runs/text_generation --src concepts.txt --ref captions.txt   # coverage, distinct_2, BLEU
  any2seq evaluate --model runs/speech --src my_recordings.txt --ref my_transcripts.txt   # your own voice
  any2seq evaluate --model runs/speech --src clips.tsv --json     # Common Voice TSV: path and sentence columns
  any2seq evaluate --model runs/captioning --src photos.jsonl     # {"file_name": ..., "caption": ...} lines""",
    "info": """examples:
  any2seq info --model runs/demo
  any2seq info --model runs/speech --json""",
    "download": """examples:
  any2seq download fsdd --out data/fsdd     # then: --set data.root=data/fsdd""",
    "average": """examples:
  any2seq average runs/demo --last 5 --out runs/demo-avg""",
    "serve": """examples:
  any2seq serve --model runs/demo                 # then open http://127.0.0.1:8000/ (API docs at /docs)
  any2seq serve --model runs/speech --port 8080 --max-inputs 8 --timeout 10
  any2seq serve --model runs/demo --dtype fp32    # force float32 (default auto: the faster on this CPU)
  curl -s localhost:8000/v1/predict -H 'Content-Type: application/json' \\
       -d '{"inputs": ["Ein Hund läuft."], "beam": 5, "n_best": 3}'
  curl -s localhost:8000/v1/predict -F file=@utterance.wav -F beam=5     # image, audio, video models""",
    "plot": """examples:
  any2seq plot attention --model runs/demo --input "Ein Hund läuft über die Wiese." --out attention.png
  any2seq plot attention --model runs/demo --input sentences.de --layer 2 --head 0 --out maps/attention.png
  any2seq plot attention --model runs/captioning --input scene.png
  any2seq plot curves runs/demo --out curves.png""",
}


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line on stderr, like every other error; the usage is one --help away."""

    def error(self, message, prog: str | None = None):
        prog = prog or self.prog
        self.exit(2, f"{prog}: error: {message} (see {prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown flag is blamed on the command it was given to."""
        args, extra = self.parse_known_args(args, namespace)
        if extra:
            command = getattr(args, "command", None)
            self.error(f"unrecognized arguments: {' '.join(extra)}", f"{self.prog} {command}" if command else None)
        return args


def _search_flags(p: argparse.ArgumentParser, beam_default=None) -> None:
    p.add_argument("--model", required=True, type=Path, help="a model directory written by `any2seq train`")
    p.add_argument("--beam", type=int, default=beam_default, help="beam size; 1 = greedy (default: the config's)")
    p.add_argument("--length-penalty", type=float, default=None, help="rank by score / length**A")
    p.add_argument("--max-len", type=int, default=256, help="cap on output tokens")
    p.add_argument("--batch-tokens", type=int, default=None, help="source tokens per decoding batch")
    p.add_argument("--batch-size", type=int, default=None, help="sources per decoding batch at most")
    p.add_argument("--max-src-len", type=int, default=None,
                   help="source tokens decoded at most; longer lines are cut, with a warning (default: the config's)")
    p.add_argument("--workers", type=int, default=None,
                   help="batches decoded at once, splitting the CPU threads (a file on 2 cores: 2 workers, up to ~1.25x)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _dtype_flags(p)


def _dtype_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dtype", choices=["auto", "fp32", "bf16", "int8"], default="auto",
                   help="weights' precision: auto (default) times fp32 and bf16 on this CPU at start-up and keeps "
                        "the faster; bf16 and int8 are for text outputs only; int8 (CPU, opt-in) multiplies by "
                        "int8 weights: faster on some CPUs, outputs not fp32's")
    p.add_argument("--bf16", action="store_true", help="the same as --dtype bf16")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="any2seq", description="Encoder-decoder models for text, images, audio and video: "
                                              "train, predict, evaluate.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", help="train a model from a YAML config", epilog=EXAMPLES["train"], formatter_class=fmt)
    p.add_argument("config", type=Path, help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("translate", help="translate lines from stdin to stdout", epilog=EXAMPLES["translate"],
                       formatter_class=fmt)
    _search_flags(p)
    p.add_argument("--n-best", type=int, default=1, help="print the N best for each line, tab-separated on that line")
    p.add_argument("--engine", choices=["torch", "ct2"], default="torch",
                   help="torch: any2seq itself; ct2: CTranslate2, with --model a folder from `any2seq export --ct2`")
    p.add_argument("--sample", action="store_true", help="sample instead of searching")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="sample from the K most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: the smallest set with mass P")
    p.add_argument("--seed", type=int, default=0, help="random seed for --sample")

    p = sub.add_parser("predict", help="predict for input files (images, WAVs, videos) or stdin lines (text)",
                       epilog=EXAMPLES["predict"], formatter_class=fmt)
    _search_flags(p)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="files to read; text models read stdin lines")
    p.add_argument("--n-best", type=int, default=1, help="print the N best for each input, tab-separated")
    p.add_argument("--sample", action="store_true", help="sample instead of searching")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="sample from the K most likely tokens (0 = all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: the smallest set with mass P")
    p.add_argument("--seed", type=int, default=0, help="random seed for --sample")
    p.add_argument("--out", type=Path, default=None, help="frame models: write each input's frames here")

    p = sub.add_parser("evaluate", help="the task's metrics on a split or on your own files (--src)",
                       epilog=EXAMPLES["evaluate"], formatter_class=fmt)
    _search_flags(p)
    p.add_argument("--split", default="test", help="train, valid or test of the data the model's config names")
    p.add_argument("--src", type=Path, help="text models: source sentences, one a line (.gz too); speech and "
                   "captioning: a manifest of audio or image files (one path a line, TSV or JSON lines)")
    p.add_argument("--ref", type=Path, help="references, one a line, aligned with --src (a manifest may carry "
                   "its own transcripts or captions instead)")
    p.add_argument("--lowercase", action="store_true", help="case-insensitive BLEU and chrF (the papers' setting; "
                   "translation)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--hyps", type=Path, default=None, help="also write the translations to this file")
    p.add_argument("--strip", type=Path, default=None,
                   help="frame models: write the first examples' input, true and predicted frames as a PNG")

    p = sub.add_parser("info", help="the model card: task, architecture, parameters, data, metrics",
                       epilog=EXAMPLES["info"], formatter_class=fmt)
    p.add_argument("--model", required=True, type=Path, help="a model directory written by `any2seq train`")
    p.add_argument("--json", action="store_true", help="print the card and config as JSON")

    p = sub.add_parser("download", help="download a public data set", epilog=EXAMPLES["download"],
                       formatter_class=fmt)
    p.add_argument("dataset", choices=["fsdd"], help="fsdd: the Free Spoken Digit Dataset (CC BY-SA 4.0)")
    p.add_argument("--out", type=Path, required=True, help="the folder to put it in")

    p = sub.add_parser("average", help="average the last N checkpoints into a new model directory",
                       epilog=EXAMPLES["average"], formatter_class=fmt)
    p.add_argument("run", type=Path, help="a run directory with checkpoints/")
    p.add_argument("--last", type=int, default=5, help="how many of the newest checkpoints")
    p.add_argument("--out", type=Path, required=True, help="the new model directory")

    p = sub.add_parser("export", help="convert a model for another engine (CTranslate2, Hugging Face transformers)",
                       epilog=EXAMPLES["export"], formatter_class=fmt)
    engine = p.add_mutually_exclusive_group(required=True)
    engine.add_argument("--ct2", action="store_true",
                        help="to CTranslate2 (pip install 'any2seq[ct2]'); translation Transformers only")
    engine.add_argument("--hf", action="store_true",
                        help="to a Hugging Face transformers directory (Marian for post-LN, Pegasus for pre-LN)")
    p.add_argument("model", type=Path, metavar="MODEL_DIR", help="a model directory written by `any2seq train`")
    p.add_argument("out", type=Path, metavar="OUT_DIR", help="the new folder (must not exist, or be empty)")

    p = sub.add_parser("import-hf", help="a local Hugging Face MarianMTModel directory -> an any2seq model directory",
                       epilog=EXAMPLES["import-hf"], formatter_class=fmt)
    p.add_argument("hf_dir", type=Path, metavar="HF_DIR", help="a saved MarianMTModel with its tokenizer files")
    p.add_argument("--out", type=Path, required=True, help="the new model directory (must not exist, or be empty)")

    p = sub.add_parser("serve", help="serve a model over HTTP: a JSON API and a demo page",
                       epilog=EXAMPLES["serve"], formatter_class=fmt)
    p.add_argument("--model", required=True, type=Path, help="a model directory written by `any2seq train`")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-body-bytes", type=int, default=None, help="largest request body, uploads included")
    p.add_argument("--max-inputs", type=int, default=None, help="most inputs (lines or files) per request")
    p.add_argument("--max-len", type=int, default=None, help="largest max_len a request may ask for")
    p.add_argument("--timeout", type=float, default=None, help="seconds a request may wait for its outputs")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    _dtype_flags(p)

    p = sub.add_parser("plot", help="plots: a model's cross-attention, or a run's training curves",
                       epilog=EXAMPLES["plot"], formatter_class=fmt)
    plots = p.add_subparsers(dest="plot", required=True, metavar="PLOT", parser_class=_Parser)
    q = plots.add_parser("attention", help="the first output's cross-attention for each input, as PNGs",
                         epilog=EXAMPLES["plot"], formatter_class=fmt)
    q.add_argument("--model", required=True, type=Path, help="a model directory written by `any2seq train`")
    q.add_argument("--input", dest="inputs", required=True, nargs="+", action="extend", metavar="TEXT_OR_FILE",
                   help="text models: a sentence, or a text file of one a line; others: an image, WAV or video "
                        "file (repeatable)")
    q.add_argument("--out", type=Path, default=Path("attention.png"),
                   help="the PNG; several inputs write NAME-1.png, NAME-2.png, ...")
    q.add_argument("--layer", type=int, default=None, help="one decoder layer, from 0 (default: the average)")
    q.add_argument("--head", type=int, default=None, help="one attention head, from 0 (default: the average)")
    q = plots.add_parser("curves", help="loss, learning rate and validation metrics of a run, as a PNG",
                         epilog=EXAMPLES["plot"], formatter_class=fmt)
    q.add_argument("run", type=Path, help="a run directory with metrics.jsonl")
    q.add_argument("--out", type=Path, default=None, help="the PNG (default: RUN/curves.png)")
    return ap


def cmd_train(args) -> int:
    from .config import load_config

    cfg = load_config(args.config, args.overrides)  # before importing torch: config errors answer at once
    from .runner import train

    out = args.out or Path("runs") / args.config.stem
    train(cfg, out, resume=args.resume, progress=not args.no_progress)
    return 0


def _translator(args):
    from .api import load

    predictor = load(args.model, args.device, _dtype(args))
    if predictor.precision.measured:  # auto chose: say what, and why
        print(predictor.precision.line("decoding"), file=sys.stderr)
    return predictor


def _batching(args) -> dict:
    """The decoding batch flags, checked, for ``Predictor.predict`` / ``translate`` / ``evaluate``."""
    from .inference import check_batching

    batching = {"batch_tokens": args.batch_tokens, "batch_size": args.batch_size, "workers": args.workers,
                "max_src_len": args.max_src_len}
    check_batching(**batching)
    return batching


def _dtype(args) -> str:
    return "bf16" if args.bf16 else args.dtype


def cmd_translate(args) -> int:
    if args.engine == "ct2":
        return _translate_ct2(args)
    from .inference import SearchOptions  # validate flags before loading the model

    # Without --beam the config's beam applies, known only once the model is loaded (it checks n_best then).
    beam = args.beam if args.beam is not None else max(args.n_best, 1)
    SearchOptions(beam=beam, n_best=args.n_best, sample=args.sample, temperature=args.temperature,
                  top_k=args.top_k, top_p=args.top_p, max_len=args.max_len)
    batching = _batching(args)
    translator = _translator(args)
    if translator.input_kind != "text" or translator.output_kind != "text":
        raise UserError(f"{args.model}: a {translator.task} model; translate is for text-to-text models, "
                        f"use `any2seq predict --model {args.model} INPUT ...`")
    lines = [line.rstrip("\n") for line in _stdin_lines()]
    out = translator.translate(lines, beam=args.beam, n_best=args.n_best, length_penalty=args.length_penalty,
                               sample=args.sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                               max_len=args.max_len, seed=args.seed, progress=sys.stderr.isatty(), **batching)
    for item in out:
        print("\t".join(item) if isinstance(item, list) else item)
    return 0


CT2_COMPUTE = {"auto": "default", "fp32": "float32", "int8": "int8", "bf16": "bfloat16"}  # --dtype -> compute_type


def _translate_ct2(args) -> int:
    """``translate --engine ct2``: CTranslate2 on a folder that ``any2seq export --ct2`` wrote."""
    unsupported = [flag for flag, on in (("--sample", args.sample), ("--batch-tokens", args.batch_tokens is not None),
                                         ("--bf16", _dtype(args) == "bf16"), ("--max-src-len", args.max_src_len is not None))
                   if on]
    if unsupported:
        raise UserError(f"{unsupported[0]}: not supported with --engine ct2")
    from .export.ct2 import CT2Translator, _read_info
    from .inference import SearchOptions

    beam = args.beam if args.beam is not None else max(_read_info(args.model)["decode"]["beam"], args.n_best)
    SearchOptions(beam=beam, n_best=args.n_best, max_len=args.max_len)
    batching = _batching(args)
    translator = CT2Translator(args.model, device=args.device, workers=batching["workers"] or 1,
                               compute_type=CT2_COMPUTE[args.dtype])
    lines = [line.rstrip("\n") for line in _stdin_lines()]
    out = translator.translate(lines, beam=beam, n_best=args.n_best, max_len=args.max_len,
                               length_penalty=args.length_penalty,
                               batch_size=32 if args.batch_size is None else args.batch_size or max(len(lines), 1))
    for item in out:
        print("\t".join(item) if isinstance(item, list) else item)
    return 0


def cmd_export(args) -> int:
    from .export import export_ct2

    if args.hf:
        from .hf.export import export_hf

        out = export_hf(args.model, args.out)
        print(f"any2seq: exported {args.model} to transformers in {out}; load it with "
              f"AutoModelForSeq2SeqLM.from_pretrained and AutoTokenizer.from_pretrained", file=sys.stderr)
        return 0
    out = export_ct2(args.model, args.out)
    print(f"any2seq: exported {args.model} to CTranslate2 in {out}; "
          f"translate with: any2seq translate --model {out} --engine ct2", file=sys.stderr)
    return 0


def cmd_import_hf(args) -> int:
    from .hf.import_marian import import_marian

    out = import_marian(args.hf_dir, args.out)
    print(f"any2seq: imported {args.hf_dir} into {out}; translate with: any2seq translate --model {out}",
          file=sys.stderr)
    return 0


def _stdin_lines() -> list[str]:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"<stdin>:{line}: not valid UTF-8") from None


def cmd_predict(args) -> int:
    from .inference import SearchOptions  # validate flags before loading the model

    beam = args.beam if args.beam is not None else max(args.n_best, 1)
    SearchOptions(beam=beam, n_best=args.n_best, sample=args.sample, temperature=args.temperature,
                  top_k=args.top_k, top_p=args.top_p, max_len=args.max_len)
    batching = _batching(args)
    predictor = _translator(args)
    if predictor.input_kind == "text":
        if args.inputs:
            raise UserError(f"this {predictor.task} model reads text lines from stdin, not files "
                            f"({args.inputs[0]}); e.g. any2seq predict --model {args.model} < input.txt")
        inputs = [line.rstrip("\n") for line in _stdin_lines()]
    elif not args.inputs:
        raise UserError(f"this {predictor.task} model reads {predictor.input_kind} files: name them as INPUT")
    else:
        inputs = [str(p) for p in args.inputs]
    if predictor.output_kind == "frames":
        if args.out is None:
            raise UserError(f"--out: this {predictor.task} model makes frames; name a directory to write them to")
        from .fileio import writable_dir

        writable_dir(args.out, f"--out {args.out}")
    results = predictor.predict(inputs, progress=sys.stderr.isatty(), **batching,
                                beam=args.beam, n_best=args.n_best, length_penalty=args.length_penalty,
                                sample=args.sample, temperature=args.temperature, top_k=args.top_k,
                                top_p=args.top_p, max_len=args.max_len, seed=args.seed)
    for i, result in enumerate(results):
        if "frames" in result:
            print(_write_frames(args.out, i, inputs[i], result["frames"]))
        else:
            print("\t".join(o["text"] for o in result["outputs"]))
    return 0


def _write_frames(out: Path, i: int, source: str, frames) -> str:
    """Write one input's predicted frames as PNGs and a GIF; returns the line to print."""
    from .data.video import write_frames, write_gif

    name = f"{i + 1:04d}"
    write_frames(out / name, frames)
    write_gif(out / f"{name}.gif", frames)
    return f"{source}\t{out / name}.gif"


def cmd_evaluate(args) -> int:
    if args.src is None and args.ref is None:
        return _evaluate_split(args)
    if args.src is None:
        raise UserError("--ref needs --src (or give neither and use --split)")
    if _input_kind(args.model) != "text":
        return _evaluate_manifest(args)
    if args.ref is None:
        raise UserError("--src and --ref go together for a text model (or give neither and use --split)")
    return _evaluate_files(args)


def _input_kind(model: Path) -> str:
    """The model's input kind from its config alone: a bad flag or file fails before the weights load."""
    from .modeldir import read_config
    from .tasks import get_task

    return get_task(read_config(model).task).input_kind


def _evaluate_manifest(args) -> int:
    """``--src MANIFEST``: the user's own audio or image files, scored with the task's metrics."""
    from .data.manifest import read_entries, read_manifest, references
    from .inference import SearchOptions
    from .tasks import get_task

    SearchOptions(beam=args.beam or 1, max_len=args.max_len)
    batching = _batching(args)
    _check_hyps(args)
    if args.lowercase:
        raise UserError("--lowercase: for BLEU on text files; this model's metrics are its task's")
    entries = read_manifest(args.src)
    refs = references(args.src, entries, args.ref)
    predictor = _translator(args)
    if predictor.output_kind != "text":
        raise UserError(f"--src: this {predictor.task} model makes frames; evaluate it with --split")
    task = get_task(predictor.task)
    inputs = read_entries(lambda path: task.read_inputs(predictor.cfg, [path])[0], args.src, entries)
    hyps = predictor.translate(inputs, beam=args.beam, length_penalty=args.length_penalty, max_len=args.max_len,
                               progress=sys.stderr.isatty(), **batching)
    metrics = task.score(hyps, refs)
    _print_metrics(metrics, args.json)
    if args.hyps:
        from .fileio import atomic_write

        atomic_write(args.hyps, "".join(h + "\n" for h in hyps))
    return 0


def _print_metrics(metrics: dict, as_json: bool) -> None:
    """The scores on stdout, flushed: they are printed before anything is written, so a full disk
    cannot lose a finished decode's results; NaN and infinity print as JSON's null."""
    if as_json:
        print(json.dumps(_finite(metrics), allow_nan=False), flush=True)
    else:
        for key, value in metrics.items():
            print(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}", flush=True)


def _evaluate_split(args) -> int:
    from .inference import SearchOptions

    SearchOptions(beam=args.beam or 1, max_len=args.max_len)
    batching = _batching(args)
    _check_hyps(args)
    if args.strip:
        from .fileio import writable_dir

        writable_dir(args.strip.parent, f"--strip {args.strip}")
    predictor = _translator(args)
    if args.strip and predictor.output_kind != "frames":
        raise UserError(f"--strip: this {predictor.task} model writes text; --strip is for frame models")
    metrics, outputs = predictor.evaluate(args.split, progress=sys.stderr.isatty(), beam=args.beam,
                                          length_penalty=args.length_penalty, max_len=args.max_len, **batching)
    _print_metrics(metrics, args.json)  # the scores first: a full disk below must not lose a finished decode's results
    if args.strip:
        _write_strip(args.strip, predictor, args.split, outputs)
    if args.hyps and predictor.output_kind == "text":
        from .fileio import atomic_write

        atomic_write(args.hyps, "".join(h + "\n" for h in outputs))
    return 0


def _write_strip(path: Path, predictor, split: str, predicted, examples: int = 4) -> None:
    """Rows of input, true and predicted frames for the split's first ``examples`` examples."""
    from .data.video import write_strip
    from .tasks import get_task

    sources, true = get_task(predictor.task).examples(predictor.cfg, split)
    rows, labels = [], []
    for i in range(min(examples, len(true))):
        if not isinstance(sources[i], str):  # a video: its frames; text sources are the label
            rows.append(sources[i])
            labels.append(f"{i + 1} input")
        rows += [true[i], predicted[i]]
        labels += [f"{i + 1} true" if not isinstance(sources[i], str) else sources[i][:40], f"{i + 1} predicted"]
    write_strip(path, rows, labels)
    print(f"any2seq: wrote {path}", file=sys.stderr)


def _check_hyps(args) -> None:
    """Before any decoding: a --hyps file that cannot be written would lose the work."""
    from .fileio import writable_dir

    if args.hyps:
        if args.hyps.is_dir():
            raise UserError(f"--hyps {args.hyps}: is a directory; name a file")
        writable_dir(args.hyps.parent, f"--hyps {args.hyps}")


def _evaluate_files(args) -> int:
    """``--src FILE --ref FILE`` for a text-input model: a task scored by BLEU and chrF (translation)
    prints them with sacreBLEU's signatures; another text task (text generation) prints its own
    metrics, those ``--split`` reports."""
    from . import registry
    from .data import check_parallel, read_lines
    from .fileio import atomic_write
    from .inference import SearchOptions
    from .metrics import bleu_chrf
    from .modeldir import read_config
    from .tasks import get_task

    name = read_config(args.model).task  # before the weights load: a wrong flag fails at once
    task = get_task(name)
    if task.output_kind != "text":
        raise UserError(f"--src: this {name} model makes frames; evaluate it with --split")
    sacrebleu = "chrf" in registry.task(name).metrics  # a task that validates by chrF is scored as translation
    if args.lowercase and not sacrebleu:
        raise UserError("--lowercase: for BLEU on text files; this model's metrics are its task's")
    SearchOptions(beam=args.beam or 1, max_len=args.max_len)
    batching = _batching(args)
    check_parallel(args.src, args.ref)
    _check_hyps(args)
    src, ref = list(read_lines(args.src)), list(read_lines(args.ref))
    translator = _translator(args)
    hyps = translator.translate(src, beam=args.beam, length_penalty=args.length_penalty, max_len=args.max_len,
                                progress=sys.stderr.isatty(), **batching)
    if sacrebleu:  # the scores first: a full disk below must not lose a finished decode's results
        _print_sacrebleu(bleu_chrf(hyps, ref, lowercase=args.lowercase), args.json)
    else:
        _print_metrics(task.score(hyps, ref), args.json)
    if args.hyps:
        atomic_write(args.hyps, "".join(h + "\n" for h in hyps))
    return 0


def _print_sacrebleu(scores: dict, as_json: bool) -> None:
    """BLEU and chrF as sacreBLEU reports them, each with its signature (JSON: bleu, chrf, signature)."""
    if as_json:
        print(json.dumps({k: scores[k] for k in ("bleu", "chrf", "signature")}), flush=True)
    else:
        print(f"BLEU {scores['bleu']:.2f}  ({scores['signature']})")
        print(f"chrF {scores['chrf']:.2f}  ({scores['chrf_signature']})", flush=True)


def cmd_info(args) -> int:
    from .config import config_to_dict
    from .modeldir import read_card, read_config

    card, cfg = read_card(args.model), read_config(args.model)
    if args.json:
        print(json.dumps(_finite({"card": card, "config": config_to_dict(cfg)}), indent=2, allow_nan=False))
        return 0
    enc, dec = cfg.model.encoder, cfg.model.decoder
    valid = card.get("valid", {})
    rows = [("model", str(args.model)), ("task", f"{card.get('task')} ({card.get('input', 'text')} -> "
                                                f"{card.get('output', 'text')})"),
            ("encoder", _describe(enc)), ("decoder", _describe(dec)),
            ("parameters", f"{card.get('parameters', 0):,}"),
            ("data", json.dumps(card.get("data", {}))),
            ("best step", str(card.get("step", "?"))),
            ("valid", ", ".join(f"{k} {v:.2f}" for k, v in valid.items() if isinstance(v, float)) or "-")]
    if "signature" in valid:
        rows.append(("sacreBLEU", valid["signature"]))
    if "averaged" in card:
        rows.append(("averaged", ", ".join(map(str, card["averaged"]))))
    rows.append(("written by", f"any2seq {card.get('any2seq_version', '?')} (format {card.get('format_version')})"))
    for key, value in rows:
        print(f"{key:<11} {value}")
    return 0


def _finite(obj):
    """``obj`` with NaN and infinities as None: JSON has no such numbers (Python would print NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _describe(component) -> str:
    """One line for an encoder or decoder config: its kind and sizes."""
    from dataclasses import asdict

    fields = {k: v for k, v in asdict(component).items() if k != "kind"}
    return f"{component.kind} (" + ", ".join(f"{k} {v}" for k, v in fields.items()) + ")"


def cmd_download(args) -> int:
    from .data.audio import download_fsdd

    path = download_fsdd(args.out)
    print(f"any2seq: FSDD recordings in {path}; train with --set data.root={args.out}", file=sys.stderr)
    return 0


def cmd_average(args) -> int:
    from .fileio import atomic_write, check_new_dir, read_regular, staged_dir
    from .modeldir import read_card, write_card
    from .train.checkpoint import MAX_JSON_BYTES, average_checkpoints, checkpoint_dirs, save_tensors

    if args.last < 1:
        raise UserError(f"--last: must be at least 1, got {args.last}")
    card = read_card(args.run)
    ckpts = checkpoint_dirs(args.run)[-args.last:]
    if not ckpts:
        raise UserError(f"{args.run}: no checkpoints to average")
    if args.out.resolve() == args.run.resolve():
        raise UserError(f"--out: {args.out} is the run itself; choose a new directory")
    check_new_dir(args.out, f"--out {args.out}")  # never over another model (as export)
    averaged = average_checkpoints(ckpts)
    with staged_dir(args.out) as tmp:
        for name in ("config.yaml", "spm.model", "spm.src.model", "spm.tgt.model"):
            if (args.run / name).exists() or (args.run / name).is_symlink():
                atomic_write(tmp / name, read_regular(args.run / name, MAX_JSON_BYTES))
        save_tensors(tmp / "model.safetensors", averaged)
        write_card(tmp, {**{k: v for k, v in card.items() if k not in ("format_version", "any2seq_version")},
                         "averaged": [c.name for c in ckpts]})
    print(f"averaged {len(ckpts)} checkpoints ({ckpts[0].name} .. {ckpts[-1].name}) -> {args.out}", file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    from dataclasses import fields

    from .serve.limits import Limits

    given = {"max_body_bytes": args.max_body_bytes, "max_inputs": args.max_inputs, "max_len": args.max_len,
             "timeout_s": args.timeout}
    for f in fields(Limits):
        if given.get(f.name) is not None and not (given[f.name] > 0 and math.isfinite(given[f.name])):
            flag = "--timeout" if f.name == "timeout_s" else "--" + f.name.replace("_", "-")
            raise UserError(f"{flag}: must be positive and finite, got {given[f.name]}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port: must be in 0..65535, got {args.port}")
    limits = Limits(**{k: v for k, v in given.items() if v is not None})
    from .serve import serve

    return serve(str(args.model), args.host, args.port, limits, args.device, _dtype(args))


def cmd_plot(args) -> int:
    if args.plot == "attention":
        from .attention_maps import cmd_plot_attention

        return cmd_plot_attention(args.model, args.inputs, args.out, args.layer, args.head)
    from .plots import cmd_plot_curves

    return cmd_plot_curves(args.run, args.out)


COMMANDS = {"train": cmd_train, "translate": cmd_translate, "predict": cmd_predict, "evaluate": cmd_evaluate,
            "info": cmd_info, "download": cmd_download, "average": cmd_average, "export": cmd_export,
            "import-hf": cmd_import_hf, "serve": cmd_serve, "plot": cmd_plot}


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}  # the disk's fault, not the code's


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"any2seq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write the code did not wrap in a UserError: a full disk is not a bug
        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"any2seq {args.command}: error: {e.filename or 'writing'}: {e.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"any2seq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
