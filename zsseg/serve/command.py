"""``zsseg serve``: load the model once and answer HTTP requests (API + web page) on one address."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from zsseg.errors import ZsSegError


def register(sub: Any) -> None:
    """Add the ``serve`` sub-command to the ``zsseg`` parser."""
    from zsseg.cli_options import add_model_flags
    from zsseg.serve.config import ServeConfig

    d = ServeConfig()
    p = sub.add_parser("serve", help="HTTP API and web page: segment uploaded images with typed class names")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=d.max_upload_bytes / 2**20,
        help=f"largest upload in MiB; bigger ones get 413 (default: {d.max_upload_bytes / 2**20:g})",
    )
    p.add_argument(
        "--max-pixels", type=float, default=d.max_pixels, help=f"largest image in pixels (default: {d.max_pixels:g})"
    )
    p.add_argument("--workers", type=int, default=d.workers, help=f"images segmented at once (default: {d.workers})")
    p.add_argument(
        "--queue",
        type=int,
        default=d.queue,
        help=f"requests waiting for a worker; beyond that the server answers 503 (default: {d.queue})",
    )
    p.add_argument(
        "--timeout", type=float, default=d.timeout_s, help=f"seconds per request before 504 (default: {d.timeout_s:g})"
    )
    add_model_flags(p)
    p.set_defaults(run=run)


def load_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``zsseg.load`` that the flags describe (one dict, passed through whole)."""
    from zsseg.cli_options import load_options as model_load_options

    return model_load_options(args)


def run(args: argparse.Namespace) -> int:
    from zsseg.serve.config import ServeConfig

    try:
        import uvicorn

        from zsseg.serve.app import create_app
    except ImportError as exc:
        raise ZsSegError(f"zsseg serve needs FastAPI and uvicorn ({exc}): pip install 'zsseg[serve]'") from exc
    from zsseg.pipeline import load

    if not 0 <= args.port <= 65535:
        raise ZsSegError(f"--port must be in 0..65535, got {args.port}")
    config = ServeConfig(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_pixels),
        workers=args.workers,
        queue=args.queue,
        timeout_s=args.timeout,
    )
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    t0 = time.perf_counter()
    seg = load(**load_options(args))
    print(
        f"zsseg: model {seg.model_name}, proposals {seg.proposer.name} (loaded in {time.perf_counter() - t0:.1f} s)",
        file=sys.stderr,
    )
    app = create_app(seg, config)
    # uvicorn handles SIGINT/SIGTERM: it stops accepting, lets in-flight requests finish, then runs the shutdown.
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info", server_header=False, timeout_graceful_shutdown=None
    )
    return 0
