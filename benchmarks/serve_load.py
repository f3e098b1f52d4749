"""Load test of ``zsseg serve``: N concurrent clients against a local server, below and above its queue limit.

Starts ``zsseg serve`` on 127.0.0.1 and a free port (fast offline model by default), then for each client count
sends ``--requests`` requests (each client loops until the total is reached) with one small image, and prints a
Markdown table: requests per second (answered 200), p50/p95 latency of the 200s, 503s (queue full), other errors,
and the server's resident memory before and after the phase.

    nice python benchmarks/serve_load.py --clients 2 8 --requests 200 --workers 1 --queue 4 --size 128
"""

from __future__ import annotations

import argparse
import io
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
HEADER = (
    "| clients | requests | 200 | 503 | other errors | req/s (200) | p50 s | p95 s | RSS before MiB | RSS after MiB |"
)


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_image(size: int) -> bytes:
    """The bundled photo resized to ``size`` x ``size``, as JPEG bytes."""
    buf = io.BytesIO()
    Image.open(REPO / "zsseg" / "assets" / "astronaut.jpg").convert("RGB").resize((size, size)).save(buf, "JPEG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def phase(url: str, image: bytes, classes: str, clients: int, requests: int, backoff: float) -> dict[str, float]:
    """``clients`` threads share ``requests`` requests; a 503 waits ``backoff`` s before the client goes on."""
    lock = threading.Lock()
    left = [requests]
    latencies: list[float] = []
    codes: dict[int, int] = {}

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                t0 = time.perf_counter()
                try:
                    code = http.post(
                        f"{url}/v1/segment", files={"image": ("a.jpg", image)}, data={"classes": classes}
                    ).status_code
                except httpx.HTTPError:
                    code = -1
                dt = time.perf_counter() - t0
                with lock:
                    codes[code] = codes.get(code, 0) + 1
                    if code == 200:
                        latencies.append(dt)
                if code == 503:
                    time.sleep(backoff)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {
        "ok": codes.get(200, 0),
        "busy": codes.get(503, 0),
        "errors": sum(n for c, n in codes.items() if c not in (200, 503)),
        "rps": codes.get(200, 0) / wall,
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "wall": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[2, 8], help="concurrent clients, one phase each")
    p.add_argument("--requests", type=int, default=200, help="requests per phase")
    p.add_argument("--workers", type=int, default=1, help="server --workers")
    p.add_argument("--queue", type=int, default=4, help="server --queue")
    p.add_argument("--size", type=int, default=128, help="image side in pixels")
    p.add_argument("--classes", default="person, american flag, rocket, sky, wall")
    p.add_argument("--model", default="conse:efficientnet-lite0")
    p.add_argument("--proposals", default="selective-search")
    p.add_argument("--backoff", type=float, default=0.2, help="seconds a client waits after a 503")
    p.add_argument(
        "--serve-args",
        default="--max-side 128 --colour-spaces hsv --scales 100 --similarities ctsf --max-proposals 8",
        help="more zsseg serve flags (default: a quick selective search)",
    )
    args = p.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "zsseg.cli", "serve", "--port", str(port), "--model", args.model]
    cmd += ["--proposals", args.proposals, "--workers", str(args.workers), "--queue", str(args.queue)]
    cmd += shlex.split(args.serve_args)
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the server did not start: {' '.join(cmd)}")
            time.sleep(0.3)
        image = test_image(args.size)
        phase(url, image, args.classes, 1, 3, args.backoff)  # warm-up (first-call allocations, text embeddings)
        info = httpx.get(f"{url}/v1/info").json()
        print(
            f"model {info['model']}, proposals {info['proposals']}, image {args.size}x{args.size} JPEG, "
            f"{len(args.classes.split(','))} classes, server --workers {args.workers} --queue {args.queue} "
            f"(capacity {args.workers + args.queue}), flags: {args.serve_args}\n"
        )
        print(HEADER)
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for clients in args.clients:
            before = rss_mib(server.pid)
            r = phase(url, image, args.classes, clients, args.requests, args.backoff)
            after = rss_mib(server.pid)
            print(
                f"| {clients} | {args.requests} | {r['ok']} | {r['busy']} | {r['errors']} | {r['rps']:.2f} | "
                f"{r['p50']:.2f} | {r['p95']:.2f} | {before:.0f} | {after:.0f} |",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
