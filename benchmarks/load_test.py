"""Load test of ``any2seq serve``: start it on a free loopback port, send Multi30k-like German
sentences from N concurrent clients for a while, stop it, and print throughput, latency, failures,
the server's peak memory and the largest batch its dynamic batcher formed.

    python benchmarks/load_test.py --model runs/demo --clients 16 --seconds 60 [--json out.json]

Only loopback hosts: this sends a flood of requests and must not be pointed at anyone else's server.
"""
from __future__ import annotations

import argparse
import gzip
import http.client
import ipaddress
import json
import math
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MULTI30K = REPO / "data" / "multi30k"
SENTENCES = [  # used when the repository's Multi30k files are absent
    "Ein Hund läuft über die Wiese.",
    "Zwei junge Männer spielen Fußball im Park.",
    "Eine Frau mit einem roten Hut sitzt auf einer Bank.",
    "Ein kleines Mädchen klettert auf ein Klettergerüst.",
    "Ein Mann fährt mit dem Fahrrad eine Straße entlang.",
    "Mehrere Leute stehen vor einem Gebäude.",
    "Ein Junge springt in einen Swimmingpool.",
    "Ein schwarzer Hund und ein gefleckter Hund kämpfen.",
    "Eine Gruppe von Menschen wartet an einer Bushaltestelle.",
    "Ein Koch bereitet in einer Küche Essen zu.",
    "Zwei Kinder sitzen im Sand am Strand.",
    "Ein Mann in einem blauen Hemd steht auf einer Leiter.",
]


def sentences(limit: int = 1000) -> list[str]:
    for name in ("val.de.gz", "test_2016_flickr.de.gz", "train.de.gz"):
        path = MULTI30K / name
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = [line.strip() for _, line in zip(range(limit), f) if line.strip()]
            if lines:
                return lines
    return SENTENCES


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def request(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {} if body is None else {"Content-Type": "application/json"}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, {}


class Server:
    """``any2seq serve`` as a subprocess; ``peak_rss`` is sampled every 50 ms while it runs."""

    def __init__(self, model: Path, host: str, port: int, extra: list[str]):
        any2seq = Path(sys.executable).parent / "any2seq"
        command = [str(any2seq)] if any2seq.is_file() else [sys.executable, "-m", "any2seq"]
        self.host, self.port = host, port
        self.process = subprocess.Popen([*command, "serve", "--model", str(model), "--host", host, "--port", str(port),
                                         *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        self.peak_rss = 0
        self._stop = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()
        threading.Thread(target=self._sample_rss, daemon=True).start()

    def _read_log(self):
        for line in self.process.stdout:
            self.log.append(line.rstrip("\n"))

    def _sample_rss(self):
        import psutil

        try:
            proc = psutil.Process(self.process.pid)
            while not self._stop.is_set():
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                self.peak_rss = max(self.peak_rss, rss)
                time.sleep(0.05)
        except psutil.Error:  # the server exited
            pass

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited:\n" + "\n".join(self.log[-20:]))
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                status, _ = request(conn, "GET", "/health")
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not answer /health within {timeout:g} s:\n" + "\n".join(self.log[-20:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stop.set()


def client(host: str, port: int, texts: list[str], options: dict, until: float, seed: int, out: dict) -> None:
    """Send one sentence at a time until ``until``; record each latency, or a failure."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=120)
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            status, body = request(conn, "POST", "/v1/predict", {"inputs": [rng.choice(texts)], **options})
            ok = status == 200 and len(body.get("results", [])) == 1
        except (OSError, http.client.HTTPException):
            ok = False
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=120)
        elapsed = time.perf_counter() - start
        if ok:
            out["latencies"].append(elapsed)
        else:
            out["failed"] += 1
    conn.close()


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(q / 100 * len(ordered)))) - 1]


def run(args) -> dict:
    texts = sentences()
    extra = [] if args.max_inputs is None else ["--max-inputs", str(args.max_inputs)]
    server = Server(args.model, args.host, args.port or free_port(args.host), extra)
    try:
        server.wait_ready(args.startup_timeout)
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        _, model = request(conn, "GET", "/v1/model")
        conn.close()  # idle through the test, uvicorn would close it (keep-alive timeout): reconnect after
        if model.get("input_kind") != "text":
            raise RuntimeError(f"{args.model}: a {model.get('task')} model; this load test sends text")
        options = {} if args.beam is None else {"beam": args.beam}
        results = [{"latencies": [], "failed": 0} for _ in range(args.clients)]
        start = time.monotonic()
        until = start + args.seconds
        threads = [threading.Thread(target=client, args=(server.host, server.port, texts, options, until, i, result))
                   for i, result in enumerate(results)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        _, health = request(conn, "GET", "/health")
        conn.close()
    finally:
        server.stop()
    latencies = [x for r in results for x in r["latencies"]]
    ms = lambda x: None if x is None else round(1000 * x, 1)  # noqa: E731
    return {"model": str(args.model), "clients": args.clients, "seconds": round(elapsed, 2),
            "requests": len(latencies), "requests_per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": ms(percentile(latencies, 50)), "p99_ms": ms(percentile(latencies, 99)),
            "failed": sum(r["failed"] for r in results), "peak_rss_mib": round(server.peak_rss / 2**20, 1),
            "largest_batch": health.get("batches", {}).get("largest_batch"), "batches": health.get("batches")}


def table(report: dict) -> str:
    rows = [("requests", report["requests"]), ("requests/s", report["requests_per_s"]),
            ("p50 latency ms", report["p50_ms"]), ("p99 latency ms", report["p99_ms"]),
            ("failed requests", report["failed"]), ("peak RSS MiB", report["peak_rss_mib"]),
            ("largest batch", report["largest_batch"])]
    head = f"any2seq serve --model {report['model']}: {report['clients']} clients for {report['seconds']} s"
    return "\n".join([head, *(f"  {k:<16} {'-' if v is None else v}" for k, v in rows)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="a text model directory written by `any2seq train`")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients, one request in flight each")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to send requests")
    ap.add_argument("--host", default="127.0.0.1", help="a loopback address to serve on")
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    ap.add_argument("--beam", type=int, default=None, help="beam size of every request (default: the config's)")
    ap.add_argument("--max-inputs", type=int, default=None, help="passed to `any2seq serve`")
    ap.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for the server")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    if not loopback(args.host):
        ap.exit(2, f"load_test: error: --host {args.host}: only loopback hosts (127.0.0.1, ::1, localhost)\n")
    if args.clients < 1 or not args.seconds > 0:
        ap.exit(2, "load_test: error: --clients and --seconds must be positive\n")
    if not (args.model / "model.json").is_file():
        ap.exit(2, f"load_test: error: --model {args.model}: not a model directory (no model.json)\n")
    try:
        report = run(args)
    except RuntimeError as e:
        print(f"load_test: error: {e}", file=sys.stderr)
        return 1
    print(table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
