"""Serving fixtures: the app on a tiny trained model, in-process (TestClient) or on a loopback port."""
from __future__ import annotations

import socket
import threading
import time

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "load_test: runs benchmarks/load_test.py briefly (a server subprocess)")
    # FastAPI's TestClient still imports httpx the way Starlette now warns about; nothing to act on here.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


class LiveServer:
    """``app`` served by uvicorn in a background thread on a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="session")
def predictor(trained):
    import any2seq

    return any2seq.load(trained.dir)


@pytest.fixture(scope="session")
def live_server():
    """The ``LiveServer`` class: ``with live_server(app) as server: server.url ...``."""
    return LiveServer


@pytest.fixture(scope="session")
def captioner_dir(tmp_path_factory):
    """A tiny image captioner (configs/tiny/captioning.yaml, a few steps): a model that takes uploads."""
    from pathlib import Path

    from any2seq.cli import main

    config = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "captioning.yaml"
    out = tmp_path_factory.mktemp("runs") / "captioning"
    assert main(["train", str(config), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="session")
def captioner(captioner_dir):
    import any2seq

    return any2seq.load(captioner_dir)
