"""What a vocabulary's text embeddings cost with CLIP: open_clip's full 77-token ``encode_text`` against zsseg's
pass cut after the last end-of-text token (``zsseg.models.clip.backend.encode_text_cut``).

Every ``zsseg segment`` run, and every new vocabulary a server sees, encodes (classes x templates) prompts before
its first image. ViT-B/16 of random weights (the real architecture, so the timings are the real model's), each
vocabulary with each template set, fp32 and (on a CPU with native bf16) bf16, the two paths interleaved; the
median of ``--repeats`` runs each. "max abs diff" is the largest difference of the L2-normalised class embeddings
between the two paths in the same precision; "cos to fp32" the smallest cosine of each path's to the fp32 full
path's.

    python benchmarks/text_speed.py [--repeats 2] [--vocabularies custom5 voc20 ade150] [--templates vild imagenet]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import open_clip
import torch
import torch.nn.functional as F

from zsseg.data.dataset import packaged_class_table
from zsseg.malloc import tune_malloc
from zsseg.models.clip.backend import ClipBackend
from zsseg.precision import cpu_has_fast_bfloat16
from zsseg.prompts import ensemble_class_embeddings, get_templates

VOCABULARIES = {
    "custom5": ["cat", "sofa", "potted plant", "wall", "person"],
    "voc20": [row.prompt for row in packaged_class_table("voc.txt") if row.raw not in (0, 255)],
    "ade150": [row.prompt for row in packaged_class_table("ade150.txt")],
}


def timed(
    repeats: int, encode: Callable[[list[str]], torch.Tensor], classes: list[str], templates: tuple[str, ...]
) -> tuple[float, torch.Tensor]:
    """Median seconds of the class embeddings of ``classes`` x ``templates`` over ``repeats`` runs, and the
    embeddings: float32 (K, D)."""
    times, out = [], torch.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.inference_mode():
            out = ensemble_class_embeddings(encode, classes, templates)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def full_context(backend: ClipBackend) -> Callable[[list[str]], torch.Tensor]:
    """open_clip's own ``encode_text`` over the whole context: zsseg's path before the cut."""

    def encode(texts: list[str]) -> torch.Tensor:
        tokens = backend.tokenizer(texts).to(backend.device)
        return F.normalize(backend.model.encode_text(tokens).float(), dim=-1)  # type: ignore[operator]

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--vocabularies", nargs="+", default=["custom5", "voc20", "ade150"], choices=VOCABULARIES)
    parser.add_argument("--templates", nargs="+", default=["vild"])
    args = parser.parse_args()
    tune_malloc()
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16", pretrained=None)
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    precisions = ["fp32", "bf16"] if cpu_has_fast_bfloat16() else ["fp32"]
    backends = {
        p: ClipBackend(model if p == "fp32" else copy.deepcopy(model), tokenizer, precision=p) for p in precisions
    }

    print(f"CLIP ViT-B/16 (random weights), {torch.get_num_threads()} threads, median of {args.repeats}\n")
    print(
        "| vocabulary | templates | prompts | precision | full s | cut s | speed-up | max abs diff "
        "| cos to fp32: full, cut |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for vocab in args.vocabularies:
        classes = VOCABULARIES[vocab]
        for name in args.templates:
            templates = get_templates(name)
            reference: torch.Tensor | None = None
            for precision, backend in backends.items():
                full_s, want = timed(args.repeats, full_context(backend), classes, templates)
                cut_s, got = timed(args.repeats, backend.encode_texts, classes, templates)
                if reference is None:
                    reference = want
                cos_full = float(F.cosine_similarity(want, reference).min())
                cos_cut = float(F.cosine_similarity(got, reference).min())
                print(
                    f"| {vocab} ({len(classes)}) | {name} | {len(classes) * len(templates)} | {precision} | "
                    f"{full_s:.2f} | {cut_s:.2f} | {full_s / cut_s:.1f}x | {float((got - want).abs().max()):.1e} | "
                    f"{cos_full:.6f}, {cos_cut:.6f} |"
                )


if __name__ == "__main__":
    main()
