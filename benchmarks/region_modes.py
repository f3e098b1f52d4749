"""Region-feature modes of the offline backend on VOC-20 val: mIoU and classification time per mode.

Every mode classifies the same proposals (computed once per generator and cached under ``--cache``), through the
library's own :class:`~zsseg.pipeline.Segmenter` (leftover regions, assembly), scored by
:class:`~zsseg.eval.SemSegEvaluator` with the paper's VOC 15/5 split. This is the table the defaults were chosen
from (``regions=auto`` and the dense size); it uses the first ``--images`` val images of ``../shared/data``.

    python benchmarks/region_modes.py --images 200 --generators mobilesam selective-search
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from proposal_cache import cached_proposals

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = {
    # name -> RegionClassifier keyword arguments
    "crops": {"regions": "crops"},
    "dense 224": {"regions": "dense", "dense_size": 224},
    "dense 320": {"regions": "dense", "dense_size": 320},
    "dense 448": {"regions": "dense", "dense_size": 448},
    "dense 640": {"regions": "dense", "dense_size": 640},
    "hybrid 448, 25% cropped": {"regions": "hybrid", "dense_size": 448, "hybrid_fraction": 0.25},
    "hybrid 448, 50% cropped": {"regions": "hybrid", "dense_size": 448, "hybrid_fraction": 0.5},
    "hybrid 320, all fused": {"regions": "hybrid", "dense_size": 320, "hybrid_fraction": 1.0},
}


class CachedProposer:
    """Serves the proposals of the image being segmented from a dict filled beforehand."""

    name = "cached"

    def __init__(self) -> None:
        self.current: object = None

    def __call__(self, image: np.ndarray) -> object:
        return self.current


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--generators", nargs="+", default=["mobilesam", "selective-search"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--model", default="conse:efficientnet-lite0")
    parser.add_argument("--cache", type=Path, default=Path("out/region_modes_cache"))
    parser.add_argument("--json", type=Path, default=Path("out/region_modes.json"))
    args = parser.parse_args()

    from zsseg.classify import RegionClassifier
    from zsseg.data import load_dataset
    from zsseg.eval import SemSegEvaluator
    from zsseg.models import load_backend
    from zsseg.pipeline import Segmenter

    dataset = load_dataset("voc20", DATA, "val")
    info = dataset.info
    samples = dataset.samples[: args.images]
    backend = load_backend(args.model, precision="fp32")
    rows = []
    for generator in args.generators:
        props = cached_proposals(generator, dataset, samples, args.cache)
        for name in args.variants:
            proposer = CachedProposer()
            seg = Segmenter(proposer, RegionClassifier(backend, **VARIANTS[name]))  # type: ignore[arg-type]
            ev = SemSegEvaluator(info.num_classes, info.classes, info.ignore_index, info.unseen_ids)
            classify_s = 0.0
            for s in samples:
                proposer.current = props[s.id]
                result = seg.segment(dataset.load_image(s), list(info.prompt_names))
                classify_s += result.timings["classify"]
                ev.process(result.label_map, dataset.load_label(s))
            r = ev.evaluate()
            row = {
                "generator": generator,
                "variant": name,
                "miou": r["mIoU"],
                "seen": r.get("mIoU_seen"),
                "unseen": r.get("mIoU_unseen"),
                "hiou": r.get("hIoU"),
                "classify_s": classify_s / len(samples),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print(f"\n{args.model}, VOC-20 val, first {len(samples)} images; classify = seconds per image\n")
    print("| proposals | region features | mIoU | seen | unseen | hIoU | classify s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]:.1f}" if r[k] is not None else "" for k in ("miou", "seen", "unseen", "hiou")]
        print(f"| {r['generator']} | {r['variant']} | {' | '.join(cells)} | {r['classify_s']:.2f} |")


if __name__ == "__main__":
    main()
