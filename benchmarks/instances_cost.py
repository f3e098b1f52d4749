"""What instances and exports cost next to segmenting: ms per image and % of the default pipeline's segment time.

Per image (the bundled photo and the first VOC val images where ../shared/data holds them): ``zsseg.load()``
with defaults segments it (best of ``--repeats``), then ``result.instances()``, ``Instances.to_json()`` and each
export format on that one image (best of ``--repeats``; image placement included, a hard link). Target: each
<= 5 % of the segment time.

    python benchmarks/instances_cost.py --images 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipeline_speed import images  # benchmarks/ is on sys.path when a script runs

CLASSES = "aeroplane, bicycle, bird, boat, bottle, bus, car, cat, chair, cow, dining table, dog, horse, motorbike, \
person, potted plant, sheep, sofa, train, tv monitor, sky, grass, wall, road"


def best(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    import zsseg
    from zsseg.export import FORMATS, ExportImage, export_dataset
    from zsseg.io import parse_classes, read_image

    seg = zsseg.load()
    classes = parse_classes(CLASSES)
    print(f"model: {seg.model_name} + {getattr(seg.proposer, 'name', '?')}; {len(classes)} classes")
    cols = ["segment", "instances()", "to_json", *FORMATS]
    print(f"{'image':<20} {'size':>9} {'M':>3} " + " ".join(f"{c:>16}" for c in cols))
    for path in images(a.images):
        image = read_image(path)
        seg.segment(image, classes)  # warm-up

        t_seg = best(lambda im=image: seg.segment(im, classes), a.repeats)
        result = seg.segment(image, classes)
        inst = result.instances()
        cost = {
            "instances()": best(result.instances, a.repeats),
            "to_json": best(lambda i=inst, p=path: i.to_json(p), a.repeats),
        }
        with tempfile.TemporaryDirectory() as tmp:
            for fmt in FORMATS:
                rec = [ExportImage(Path(path).name, path, inst)]
                cost[fmt] = best(lambda f=fmt, r=rec: export_dataset(r, Path(tmp) / f, f), a.repeats)
        h, w = inst.image_size
        cells = [f"{t_seg * 1e3:9.0f} ms {'':>4}"] + [
            f"{c * 1e3:6.1f} ms {100 * c / t_seg:4.1f}%" for c in cost.values()
        ]
        print(f"{Path(path).name:<20} {f'{w}x{h}':>9} {len(inst):>3} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
