"""The server under hostile or unlucky requests (issue 21): a heavy request neither starves others
nor outlives its client, and malformed bodies, slow bodies, odd methods and bad uploads are each a
4xx that says what is wrong."""
from __future__ import annotations

import http.client
import io
import json
import select
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient

from any2seq.serve import Limits, create_app

HANG_GUARD_S = 30  # a generous bound on waits that must end; never a speed assertion


def post(port: int, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD_S)
    try:
        conn.request("POST", "/v1/predict", json.dumps(body), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD_S)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())["batches"]
    finally:
        conn.close()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {HANG_GUARD_S} s for {what}"
        time.sleep(0.05)


def test_a_heavy_request_takes_turns_with_a_light_one_and_stops_when_its_client_leaves(predictor, trained,
                                                                                        live_server):
    # Inside every default limit, as in the campaign: 64 inputs of 1,990 characters, beam 16, max_len 512.
    heavy = {"inputs": [("Ein Hund läuft über die Wiese. " * 70)[:1990]] * 64, "beam": 16, "max_len": 512}
    light = {"inputs": [trained.pairs[0][0]], "beam": 1}
    with live_server(create_app(predictor, Limits(timeout_s=600))) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD_S)
        body = json.dumps(heavy).encode()
        client.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_for(lambda: health(server.port)["batches"] >= 1, "the heavy request to start decoding")
        status, answer = post(server.port, light)
        assert status == 200 and answer["results"][0]["outputs"][0]["text"] == trained.pairs[0][1]
        readable, _, _ = select.select([client], [], [], 0)
        assert not readable, "the heavy request finished before the light one was answered: no turns taken"
        client.close()  # the heavy request's client leaves
        wait_for(lambda: health(server.port)["cancelled"] >= 1, "the heavy request's decoding to stop")
        assert post(server.port, light)[0] == 200
        stats = health(server.port)
    assert stats["inputs"] < len(heavy["inputs"]) + 2, stats  # most of the heavy request was never decoded


def test_a_request_whose_time_runs_out_stops_its_search_between_steps():
    """The batcher's ``check`` (the app calls it before each decoder step) ends the decoding of a
    batch nobody waits for; the worker is then free for the next request."""
    import asyncio

    from any2seq.serve.batcher import Batcher, Cancelled

    steps = []

    def run(inputs, labels, options):  # a search that would never end by itself
        if inputs == ["endless"]:
            while True:
                batcher.check()
                steps.append(1)
                time.sleep(0.001)
        return [x.upper() for x in inputs]

    batcher = Batcher(run)

    async def scenario():
        await batcher.start()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(batcher.submit(["endless"], {}), 0.2)
            return await asyncio.wait_for(batcher.submit(["next"], {}), HANG_GUARD_S)
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == ["NEXT"]
    assert steps and batcher.stats["cancelled"] == 1
    assert issubclass(Cancelled, Exception)


def test_the_decoder_hook_lives_as_long_as_the_app(predictor):
    hooks = predictor.model.decoder._forward_pre_hooks
    before = len(hooks)
    with TestClient(create_app(predictor)):
        assert len(hooks) == before + 1
    assert len(hooks) == before


def test_a_body_that_stops_arriving_is_a_408(predictor, live_server):
    with live_server(create_app(predictor, Limits(timeout_s=1))) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD_S) as client:
            client.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n{\"inputs\": [")
            answer = client.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 408") and "did not arrive within the limit of 1 s" in answer


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor), raise_server_exceptions=False) as c:
        yield c


JSON = {"content-type": "application/json"}
HOSTILE = {
    "deeply nested list": (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    "deeply nested input": (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
    "integer of 5000 digits": (b'{"inputs": ["a"], "beam": ' + b"7" * 5000 + b"}", 400, "integer too long"),
    "truncated JSON": (b'{"inputs": [', 400, "not valid JSON (Expecting value at line 1 column 13)"),
}


@pytest.mark.parametrize("body, status, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_is_a_4xx_that_says_what_is_wrong(client, body, status, message):
    response = client.post("/v1/predict", content=body, headers=JSON)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error


def test_a_405_says_which_methods_the_path_takes(client):
    response = client.put("/health")
    assert response.status_code == 405 and response.headers["allow"] == "GET"
    assert client.get("/v1/predict").headers["allow"] == "POST"


def test_openapi_documents_the_errors_and_the_input_bounds(client, captioner):
    predict = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    assert {"200", "400", "408", "413", "422"} <= set(predict["responses"])
    assert predict["responses"]["400"]["content"]["application/json"]["schema"]["required"] == ["error"]
    limits = Limits()
    assert set(predict["requestBody"]["content"]) == {"application/json"}  # a text model takes no uploads
    body = predict["requestBody"]["content"]["application/json"]["schema"]["properties"]
    inputs, beam = body["inputs"], body["beam"]["anyOf"][0]
    assert (inputs["minItems"], inputs["maxItems"], inputs["items"]["maxLength"]) == (1, limits.max_inputs,
                                                                                      limits.max_input_chars)
    assert (beam["minimum"], beam["maximum"]) == (1, limits.max_beam)
    with TestClient(create_app(captioner)) as c:
        content = c.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data"}
    files = content["multipart/form-data"]["schema"]["properties"]["file"]
    assert (files["minItems"], files["maxItems"]) == (1, limits.max_inputs)


def test_json_options_are_validated_strictly_and_form_options_alike(client, captioner):
    response = client.post("/v1/predict", json={"inputs": ["a"], "attention": 0})
    assert response.status_code == 422 and "attention" in response.json()["error"]
    assert client.post("/v1/predict", json={"inputs": ["a"], "beam": 2.0}).status_code == 200  # JSON's integer
    files = [("file", ("a.png", png(), "image/png"))]
    with TestClient(create_app(captioner)) as c:
        assert c.post("/v1/predict", files=files, data={"beam": "2", "max_len": "null"}).status_code == 200
        refused = c.post("/v1/predict", files=files, data={"attention": "0"})
    assert refused.status_code == 422 and "attention" in refused.json()["error"]


def png(size=24) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (size, size), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_a_bad_upload_is_named_by_its_number_and_file_name(captioner):
    files = [("file", ("good.png", png(), "image/png")), ("file", ("cat.png", b"not an image", "image/png"))]
    with TestClient(create_app(captioner), raise_server_exceptions=False) as c:
        response = c.post("/v1/predict", files=files)
        assert c.post("/v1/predict", files=files[:1]).status_code == 200
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("upload 2 (cat.png): not a readable image") and "BytesIO" not in error, error


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_serve_refuses_a_timeout_that_is_not_positive_and_finite(value, tmp_path, capsys):
    from any2seq.cli import main

    assert main(["serve", "--model", str(tmp_path), "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--timeout: must be positive and finite" in err, err
    with pytest.raises(ValueError):
        Limits(timeout_s=float(value))
