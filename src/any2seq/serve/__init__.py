"""Serving a trained model over HTTP: ``serve(DIR)`` runs the API and demo page with uvicorn."""
from __future__ import annotations

from .app import create_app
from .limits import Limits


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          device: str = "cpu", dtype: str = "auto") -> int:
    """Load the model in ``model_dir`` (on ``device``, weights in ``dtype``) and serve it until
    interrupted; returns an exit status."""
    import socket

    import uvicorn

    from .. import load
    from ..errors import UserError

    predictor = load(model_dir, device, dtype)
    if predictor.precision.measured:
        print(predictor.precision.line("decoding"), flush=True)
    try:  # a port in use or a bad host: one line now, not uvicorn's log and exit
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as e:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e})") from None
    print(f"any2seq: serving the {predictor.task} model in {model_dir} at http://{host}:{port}/ "
          f"(API docs at /docs)", flush=True)
    uvicorn.run(create_app(predictor, limits), host=host, port=port, log_level="warning")
    return 0


__all__ = ["Limits", "create_app", "serve"]
