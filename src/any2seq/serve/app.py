"""The HTTP API (FastAPI): predictions for text (JSON) or uploaded images and audio (multipart),
the model's description, a health check, and the demo page at ``/``."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import math
import re
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from ..attention_maps import attention_maps, has_attention
from ..errors import UserError
from .batcher import Batcher
from .edges import BodyLimit, disconnected, error_responses, form_value, parse_json
from .limits import Limits

STATIC = Path(__file__).parent / "static"


def _integral(value):  # JSON Schema's "integer" includes 2.0; strict validation alone would refuse it
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_integral)]


class Options(BaseModel):
    """Search options; unset ones take the model config's decode section. A JSON body is validated
    strictly (``attention: 0`` is not a boolean); form fields, all strings, are converted."""

    # Bounds beyond the search's own checks: sampling at a temperature or top_p near 0 (or a seed
    # past 64 bits) fails inside torch rather than with a message.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    beam: Integer | None = None
    n_best: Integer = 1
    sample: bool = False
    temperature: float = Field(1.0, ge=0.01, le=100.0)
    top_k: Integer = 0
    top_p: float = Field(1.0, ge=0.0001, le=1.0)
    max_len: Integer | None = None
    seed: Integer = Field(0, ge=0, le=2**53 - 1)  # the largest integer every JSON reader holds exactly
    attention: bool = False  # add the cross-attention map of each input's first output


class PredictRequest(Options):
    inputs: list[str]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None  # JSON has no inf or nan


def frames_png(frames: np.ndarray) -> str:
    """(T, C, H, W) frames in [0, 1] -> a base64 PNG of the frames side by side."""
    from PIL import Image

    strip = np.concatenate(list(np.clip(frames, 0, 1)), axis=-1)  # (C, H, T*W)
    pixels = (strip.transpose(1, 2, 0) * 255).round().astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def jsonable(result: dict) -> dict:
    if "frames" in result:
        frames = result["frames"]
        return {"frames": {"shape": list(frames.shape), "png": frames_png(frames)}}
    return {"outputs": [{"text": o["text"], "score": _finite(o["score"])} for o in result["outputs"]]}


def model_summary(predictor, limits: Limits) -> dict:
    def plain(x):
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else str(x)

    cfg = predictor.cfg
    return {"task": predictor.task, "input_kind": predictor.input_kind, "output_kind": predictor.output_kind,
            "parameters": predictor.card.get("parameters"), "attention": has_attention(predictor),
            "config": {"encoder": plain(cfg.model.encoder), "decoder": plain(cfg.model.decoder),
                       "decode": plain(cfg.decode)},
            "card": predictor.card, "limits": dataclasses.asdict(limits)}


def check_limits(predictor, inputs: list, options: Options, limits: Limits) -> dict:
    """The search options ``predictor.predict`` takes, after every limit is checked (UserError if not)."""
    if not inputs:
        raise UserError("inputs: give at least one input")
    if len(inputs) > limits.max_inputs:
        raise UserError(f"inputs: {len(inputs)} inputs, more than the limit of {limits.max_inputs}")
    for i, x in enumerate(inputs):
        if isinstance(x, str) and len(x) > limits.max_input_chars:
            raise UserError(f"inputs[{i}]: {len(x)} characters, more than the limit of {limits.max_input_chars}")
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate, e.g. JSON "\ud800"
                raise UserError(f"inputs[{i}]: not valid Unicode text") from None
    opts = options.model_dump(exclude={"attention", "inputs"})
    opts["max_len"] = min(256, limits.max_len) if opts["max_len"] is None else opts["max_len"]
    if opts["max_len"] > limits.max_len:
        raise UserError(f"max_len: {opts['max_len']} is more than the limit of {limits.max_len}")
    for key in ("beam", "n_best"):
        if opts[key] is not None and opts[key] > limits.max_beam:
            raise UserError(f"{key}: {opts[key]} is more than the limit of {limits.max_beam}")
    if options.attention and not has_attention(predictor):
        raise UserError("attention: this model's decoder has no attention")
    try:
        predictor.options(**opts)  # validates the rest
    except UserError as e:  # "--n-best: ..." names the command-line flag; a request names its field
        flag, _, message = str(e).partition(": ")
        message = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), message)  # "more than --beam 2"
        raise UserError(f"{flag.removeprefix('--').replace('-', '_')}: {message}") from None
    return opts


def _one_line(error: ValidationError | RequestValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


UPLOAD_COST = 100  # an upload's share of a batch's budget, as a text input of this many characters
NUMBERED = re.compile(r"(?:upload|input)(?: (\d+))?: ")  # how a task's reader names the input it refuses


def name_input(message: str, labels: list[str]) -> str:
    """A reader's "upload 2: ..." (numbered within one batch) as the request names that input."""
    found = NUMBERED.match(message)
    if found is None or (found.group(1) is None and len(labels) != 1):
        return message
    index = int(found.group(1) or 1) - 1
    return f"{labels[index]}: {message[found.end():]}" if 0 <= index < len(labels) else message


def costs_of(predictor, inputs: list, opts: dict) -> list[int]:
    """Each input's share of a batch's budget: its length times the rows it takes in the search."""
    rows = opts["n_best"] if opts["sample"] else max(opts["beam"] or predictor.cfg.decode.beam, opts["n_best"])
    return [rows * (len(x) + 1 if isinstance(x, str) else UPLOAD_COST) for x in inputs]


def predict_schema(input_kind: str, limits: Limits) -> dict:
    """The OpenAPI request body of ``POST /v1/predict``: JSON for a text model, uploads for the
    others, with the bounds ``check_limits`` holds them to (a rule across fields, such as n_best
    <= beam, or an unreadable upload, is still a 400 the schema cannot say)."""
    options = Options.model_json_schema()["properties"]
    bounds = {"beam": limits.max_beam, "n_best": limits.max_beam, "max_len": limits.max_len}
    for name, most in bounds.items():
        numbers = next((s for s in options[name].get("anyOf", [options[name]]) if s.get("type") == "integer"))
        numbers.update(minimum=1, maximum=most)
    options["top_k"]["minimum"] = 0
    if input_kind == "text":
        body = PredictRequest.model_json_schema()
        body["properties"] = {**options, "inputs": {"type": "array", "minItems": 1, "maxItems": limits.max_inputs,
                                                     "items": {"type": "string", "maxLength": limits.max_input_chars}}}
        content = {"application/json": {"schema": body}}
    else:
        files = {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1,
                 "maxItems": limits.max_inputs}
        content = {"multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                      "additionalProperties": False,
                                                      "properties": {"file": files, **options}}}}
    return {"requestBody": {"required": True, "content": content}}


def create_app(predictor, limits: Limits | None = None) -> FastAPI:
    """The app serving ``predictor`` (an ``any2seq.load`` result) within ``limits``."""
    limits = limits or Limits()

    def run(inputs: list, labels: list[str], options: dict) -> list[dict]:  # in the batcher's worker thread
        try:
            return [jsonable(r) for r in predictor.predict(inputs, **options)]
        except UserError as e:
            raise UserError(name_input(str(e), labels)) from None

    def attention_of(inputs: list, results: list[dict]) -> list[dict | None]:
        out = []
        for source, result in zip(inputs, results):
            try:
                maps = attention_maps(predictor, source, result["outputs"][0]["text"])
            except UserError:  # e.g. an empty input: nothing was attended to
                out.append(None)
                continue
            out.append({"weights": np.round(maps["weights"].astype(np.float64), 5).tolist(),
                        "src_labels": maps["src_labels"],
                        "tgt_labels": maps["tgt_labels"]})
        return out

    batcher = Batcher(run, batch_inputs=limits.max_inputs)

    def stop_if_unwanted(module, args):  # before each decoder call: each search step, each frame
        batcher.check()

    @asynccontextmanager
    async def lifespan(app):
        hook = predictor.model.decoder.register_forward_pre_hook(stop_if_unwanted)
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            hook.remove()

    app = FastAPI(title=f"any2seq: {predictor.task}", lifespan=lifespan)
    app.state.batcher, app.state.limits = batcher, limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, max_s=limits.timeout_s)

    @app.exception_handler(UserError)
    async def user_error(request, error: UserError):
        return JSONResponse({"error": str(error)}, 400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError):
        return JSONResponse({"error": _one_line(error)}, 422)

    @app.exception_handler(ValidationError)
    async def invalid_options(request, error: ValidationError):
        return JSONResponse({"error": _one_line(error)}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):  # its headers too: a 405's Allow
        return JSONResponse({"error": str(error.detail)}, error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def bug(request, error: Exception):  # still logged by the server; the client gets JSON too
        return JSONResponse({"error": f"internal error ({type(error).__name__}); see the server's log"}, 500)

    async def read_request(request: Request) -> tuple[list, list[str], Options]:
        """(inputs, their labels, options) from a JSON body (text models) or a multipart upload
        (image, audio, video)."""
        text = predictor.input_kind == "text"
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            if text:
                raise UserError(f"this {predictor.task} model reads text: send JSON {{\"inputs\": [...]}}")
            form = await request.form(max_files=limits.max_inputs, max_fields=32)
            try:
                files = form.getlist("file")
                if any(isinstance(f, str) for f in files):
                    raise UserError("file: must be an uploaded file, not a form value")
                fields = {k: form_value(v) for k, v in form.multi_items() if k != "file"}
                options = Options.model_validate(fields, strict=True)
                labels = [f"upload {i + 1} ({f.filename or 'no name'})" for i, f in enumerate(files)]
                return [await f.read() for f in files], labels, options
            finally:
                await form.close()  # the spooled temporary files
        if not text:  # never a path the server would open: uploads only
            raise UserError(f"this {predictor.task} model reads {predictor.input_kind}: upload files as "
                            "multipart/form-data field `file`")
        parsed = PredictRequest.model_validate(parse_json(await request.body()), strict=True)  # JSON types as documented
        return parsed.inputs, [f"inputs[{i}]" for i in range(len(parsed.inputs))], parsed

    async def outputs(inputs: list, labels: list[str], options: Options, opts: dict) -> dict:
        results = await batcher.submit(inputs, opts, labels, costs_of(predictor, inputs, opts))
        if options.attention:
            maps = await batcher.call(attention_of, inputs, results)
            results = [{**r, "attention": m} for r, m in zip(results, maps)]
        return {"results": results}

    @app.post("/v1/predict", openapi_extra=predict_schema(predictor.input_kind, limits), responses=error_responses(400, 408, 413, 422))
    async def predict(request: Request):
        """Outputs (n-best text with scores, or frames as a base64 PNG strip) for each input. The
        decoding stops when the time limit passes or the client leaves."""
        inputs, labels, options = await read_request(request)
        opts = check_limits(predictor, inputs, options, limits)
        work = asyncio.ensure_future(outputs(inputs, labels, options, opts))
        gone = asyncio.ensure_future(disconnected(request.receive))
        try:
            done, _ = await asyncio.wait({work, gone}, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()  # its batcher future too: the search stops at its next step
        if work not in done:  # timed out, or the client left (then nobody reads this)
            return JSONResponse({"error": f"the request took longer than the limit of {limits.timeout_s:g} s"}, 408)
        return work.result()

    @app.get("/v1/model")
    async def model():
        """The task, input and output kinds, configuration, parameter count and model card."""
        return model_summary(predictor, limits)

    @app.get("/health")
    async def health():
        return {"status": "ok", "batches": batcher.stats}

    page = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return page

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
