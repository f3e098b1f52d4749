"""A real uvicorn server around a stub segmenter whose proposals take a chosen time (for load tests).

Run as ``python tests/serve/stub_server.py --port P [--delay-per-row S] [--workers N] [--queue N] [--timeout S]``.
The stub labels a picture of red/green/blue vertical strips by colour (``zsseg_testing.ColourBackend``); its
proposals take ``delay_per_row`` seconds per image row, so a client picks a request's duration by the image's height.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zsseg_testing import ColourBackend  # noqa: E402

from zsseg.classify.region import RegionClassifier  # noqa: E402
from zsseg.pipeline import Segmenter  # noqa: E402
from zsseg.proposals.base import Proposals  # noqa: E402


class SlowStripProposer:
    """Three vertical strips as proposals, after sleeping ``delay_per_row`` seconds per image row."""

    name = "stub:strips"

    def __init__(self, delay_per_row: float) -> None:
        self.delay_per_row = delay_per_row

    def __call__(self, image: np.ndarray) -> Proposals:
        h, w = image.shape[:2]
        time.sleep(self.delay_per_row * h)
        masks = np.zeros((3, h, w), dtype=bool)
        for i, edges in enumerate(np.array_split(np.arange(w), 3)):
            masks[i, :, edges] = True
        return Proposals(masks, np.ones(3, np.float32))


def main() -> None:
    import uvicorn

    from zsseg.serve.app import create_app
    from zsseg.serve.config import ServeConfig

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay-per-row", type=float, default=0.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--queue", type=int, default=8)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--max-upload-mb", type=float, default=20.0)
    args = p.parse_args()
    seg = Segmenter(SlowStripProposer(args.delay_per_row), RegionClassifier(ColourBackend(), templates="single"))  # type: ignore[arg-type]
    config = ServeConfig(
        workers=args.workers,
        queue=args.queue,
        timeout_s=args.timeout,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
    )
    uvicorn.run(create_app(seg, config), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
