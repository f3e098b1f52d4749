"""Label maps of this checkout against another commit's, configuration by configuration: byte-identical or not.

A redesign must change no result. This segments the same images with the same configurations in two trees (this
checkout and ``--baseline-commit``, checked out as a git worktree under ``out/``), each in its own process, and
prints one row per configuration: images compared, how many label maps are byte-identical, and the lowest share of
equal pixels. Configurations: the default pipeline (``zsseg.load()``), ``regions="crops"``, and a small random
CLIP ViT (its checkpoint made once under ``out/cache``) with its default (hybrid) and crop regions.

    python benchmarks/same_labels.py --baseline-commit c6dd8a3 --images 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["person", "american flag", "rocket", "sky", "wall", "dog", "car", "tree"]
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
CONFIGS = {
    "default": {},
    "crops": {"regions": "crops"},
    "clip-tiny": {"model": "clip-tiny"},
    "clip-tiny-crops": {"model": "clip-tiny", "regions": "crops"},
}


def images(n: int) -> list[str]:
    """The bundled photo, then VOC val images where ``../shared/data`` is present."""
    out = [str(REPO / "zsseg/assets/astronaut.jpg")]
    voc = REPO.parent / "shared/data/VOCdevkit/VOC2012"
    if voc.is_dir():
        ids = (voc / "ImageSets/Segmentation/val.txt").read_text().split()
        out += [str(voc / "JPEGImages" / f"{i}.jpg") for i in ids[: max(0, n - 1)]]
    return out[:n]


def tiny_clip() -> str:
    """A checkpoint of :data:`TINY_CLIP` with seeded random weights (made once); returns the model string."""
    import open_clip
    import torch

    folder = REPO / "out/cache"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "zsseg-same-labels-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    path = folder / "zsseg-same-labels-clip.pt"
    if not path.is_file():
        torch.manual_seed(0)
        torch.save(open_clip.create_model("zsseg-same-labels-clip").state_dict(), path)
    return f"clip:zsseg-same-labels-clip/{path}"


def run_tree(out: Path, n: int) -> None:
    """In this process (whatever zsseg is on the path): every configuration over the images, label PNGs to ``out``."""
    import zsseg

    for name, config in CONFIGS.items():
        kwargs = dict(config)
        if kwargs.get("model") == "clip-tiny":
            kwargs["model"] = tiny_clip()
        seg = zsseg.load(device="cpu", **kwargs)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in images(n):
            result = seg.segment(zsseg.read_image(path), CLASSES)
            np.save(folder / f"{Path(path).stem}.npy", result.label_map)


def digest(path: Path) -> str:
    return hashlib.sha256(np.load(path).tobytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-commit", default="c6dd8a3")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--_run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._run:
        run_tree(Path(args._run), args.images)
        return
    base_tree = REPO / "out/trees" / args.baseline_commit
    if not (base_tree / "zsseg").is_dir():
        base_tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.baseline_commit], check=True)
    results = {}
    for tag, tree in ((f"baseline-{args.baseline_commit}-{args.images}", base_tree), ("head", REPO)):
        out = REPO / "out/same_labels" / tag
        if not (tag.startswith("baseline") and (out / "done").is_file()):  # a baseline's maps are made once
            env = {**os.environ, "PYTHONPATH": str(tree)}
            cmd = [sys.executable, __file__, "--_run", str(out), "--images", str(args.images)]
            subprocess.run(cmd, check=True, env=env, cwd=tree)
            (out / "done").touch()
        results[tag.split("-")[0]] = out
    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), "?")
    print(f"CPU: {cpu}; baseline {args.baseline_commit} against this checkout, {args.images} images")
    print("| configuration | images | byte-identical | lowest equal-pixel share |")
    print("|---|---|---|---|")
    for name in CONFIGS:
        files = sorted((results["baseline"] / name).glob("*.npy"))
        same = sum(digest(f) == digest(results["head"] / name / f.name) for f in files)
        share = min(float((np.load(f) == np.load(results["head"] / name / f.name)).mean()) for f in files)
        print(f"| {name} | {len(files)} | {same} | {share:.6f} |")


if __name__ == "__main__":
    main()
