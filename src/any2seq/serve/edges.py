"""The HTTP edge, before and around the model: the request body's size and time limits, noticing a
client that left, reading JSON safely, and the one-line JSON errors the API documents."""
from __future__ import annotations

import asyncio
import json

from starlette.exceptions import HTTPException

from ..errors import UserError


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyTooSlow(HTTPException):
    def __init__(self, limit: float):
        super().__init__(408, f"the request body did not arrive within the limit of {limit:g} s")


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (by Content-Length or by counting as they
    stream) and bodies that have not fully arrived ``max_s`` seconds after the request began, so a
    client that stops sending cannot hold a connection and a request open for ever.

    The request's headers are uvicorn's to time: it waits for them as long as the client sends,
    so a server reachable by others belongs behind a proxy that bounds them (README, Serving)."""

    def __init__(self, app, max_bytes: int, max_s: float):
        self.app, self.max_bytes, self.max_s = app, max_bytes, max_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from fastapi.responses import JSONResponse

        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            error = BodyTooLarge(self.max_bytes)
            return await JSONResponse({"error": error.detail}, error.status_code)(scope, receive, send)
        received, complete = 0, False
        deadline = asyncio.get_running_loop().time() + self.max_s

        async def limited():
            nonlocal received, complete
            if complete:  # the body is in: what comes now is the client leaving, whenever it does
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except asyncio.TimeoutError:
                raise BodyTooSlow(self.max_s) from None
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


async def disconnected(receive) -> None:
    """Returns when the client has gone (call it once the body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def parse_json(body: bytes):
    """The JSON value of a request body; ``UserError`` saying what is wrong with it."""
    try:
        return json.loads(body)
    except RecursionError:  # the parser recurses once per level of nesting
        raise UserError("the body is not valid JSON: it is nested too deeply") from None
    except json.JSONDecodeError as e:
        raise UserError(f"the body is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError:
        raise UserError("the body is not valid JSON: it is not UTF-8 text") from None
    except ValueError as e:  # Python refuses to convert integers of more than 4300 digits
        raise UserError(f"the body holds an integer too long to read ({str(e).split(':')[0]})") from None


def form_value(text: str):
    """A form field as the JSON body would carry it ("2" -> 2, "true" -> True, "null" -> None), so
    that both are validated alike; anything else stays the text it is."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def error_responses(*statuses: int) -> dict:
    """The OpenAPI ``responses`` of the one-line JSON errors a route may answer."""
    why = {400: "a bad input, option or body", 404: "no such path", 405: "a method the path does not take",
           408: "the request took longer than the time limit", 413: "the body is larger than the limit",
           422: "a field of the wrong type, or unknown"}
    return {s: {"description": why[s], "content": {"application/json": {"schema": ERROR_SCHEMA}}} for s in statuses}
