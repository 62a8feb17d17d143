"""Schemathesis (property-based testing from the OpenAPI schema) against a live ``any2seq serve``
for a text model and an upload model: no 5xx, and every answer as the schema documents it.

Bounded to about a minute: few examples per operation and small server limits (which the schema
states, so the generated requests stay small); deterministic generation, so a run repeats."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("schemathesis")

# A rule across fields (n_best <= beam) or an upload that is not a readable image is a 400 the
# schema cannot state: schema-valid requests may get it. A multipart form cannot tell `[null]` from
# `null` or `0` from `"0"`, so schemathesis' wrong-type form cases often arrive as valid ones: the
# upload model's negative check would fail on schemathesis' own encoding, not on the server.
CONFIG = """checks.enabled = true

[[operations]]
include-name = "POST /v1/predict"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]
checks.negative_data_rejection.enabled = {negative}
"""
SERVER_LIMITS = ["--max-inputs", "4", "--max-len", "32", "--max-body-bytes", "200000", "--timeout", "60"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(model_dir, port: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "any2seq", "serve", "--model", str(model_dir), "--port", str(port),
                               *SERVER_LIMITS], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120  # a hang guard: loading the model takes seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    pytest.fail(f"any2seq serve did not start: {server.communicate()[0]}")


@pytest.mark.parametrize("model, examples, negative", [("trained", 40, "true"), ("captioner_dir", 25, "false")],
                         ids=["text", "upload"])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(model, examples, negative, request, tmp_path):
    model_dir = request.getfixturevalue(model)
    model_dir = model_dir.dir if model == "trained" else model_dir
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(negative=negative), encoding="utf-8")
    port = free_port()
    server = serve(model_dir, port)
    try:
        run = subprocess.run([sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
                              f"http://127.0.0.1:{port}/openapi.json", "--max-examples", str(examples),
                              "--generation-deterministic", "--workers", "1", "--no-color", "--request-timeout", "60"],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:] + log[-2000:]
    assert "No issues found" in run.stdout and "Tested: 3" in run.stdout, run.stdout[-3000:]
