"""One image of a batch, as both engines run it: read, segment, write the outputs atomically, return its index row."""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from zsseg.errors import ZsSegError
from zsseg.io import AtomicWriter, read_image

LABELS_DIR = "labels"
OVERLAYS_DIR = "overlays"
INSTANCES_DIR = "instances"


def output_files(key: str, overlays: bool) -> tuple[str, str | None]:
    """The label PNG's and the overlay's paths relative to OUT (``labels/<key>.png``, ``overlays/<key>.png``)."""
    return f"{LABELS_DIR}/{key}.png", (f"{OVERLAYS_DIR}/{key}.png" if overlays else None)


def instances_file(key: str) -> str:
    """The image's instances document relative to OUT (``instances/<key>.json``, written when a run exports)."""
    return f"{INSTANCES_DIR}/{key}.json"


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its segmenter and write outputs (picklable, sent to every worker).

    Args:
        out: the batch output folder (shared storage on a cluster).
        classes: the vocabulary.
        load_options: keyword arguments of :func:`zsseg.load` (model, proposals, device, templates, ...).
        overlays: also write ``overlays/<key>.png``.
        threads: torch CPU threads per worker; None leaves torch's default.
        instances: keyword arguments of :meth:`Segmentation.instances` to also write ``instances/<key>.json``
            (``zsseg segment``'s ``<stem>.instances.json`` document); None writes none.
    """

    out: str
    classes: tuple[str, ...]
    load_options: dict[str, Any] = field(default_factory=dict)
    overlays: bool = False
    threads: int | None = None
    instances: dict[str, Any] | None = None


class BatchSegmenter:
    """A worker's segmenter: built once from a :class:`WorkerSpec`, then :meth:`process` per image.

    Args:
        spec: the batch's settings.
        worker: the name recorded in each row's ``worker`` column (default ``host:pid``).
        device: overrides ``spec.load_options["device"]`` (e.g. ``cuda:1`` for the second local worker).
    """

    def __init__(self, spec: WorkerSpec, worker: str | None = None, device: str | None = None) -> None:
        import torch

        from zsseg.malloc import tune_malloc
        from zsseg.pipeline import load

        tune_malloc()  # a spawned process or Ray actor does not run the CLI's start-up
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.spec = spec
        self.out = Path(spec.out)
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        options = dict(spec.load_options)
        if device is not None:
            options["device"] = device
        self.segmenter = load(**options)

    def process(self, path: str, key: str) -> dict[str, Any]:
        """Segment one image and write its outputs; never raises for a bad image (returns a failed row)."""
        label_file, overlay_file = output_files(key, self.spec.overlays)
        row: dict[str, Any] = {
            "path": path,
            "key": key,
            "model": self.segmenter.model_name,
            "proposals": getattr(self.segmenter.proposer, "name", ""),
            "worker": self.worker,
        }
        t_start = time.perf_counter()
        try:
            image = read_image(path)  # the CLI's and serve's reader: local path or fsspec URL, pixel guard
            t_read = time.perf_counter()
            result = self.segmenter.segment(image, self.spec.classes)
            t_seg = time.perf_counter()
            label_dest = self.out / label_file
            label_dest.parent.mkdir(parents=True, exist_ok=True)
            with AtomicWriter() as writer:  # the same encoders as Segmentation.save, so the same bytes
                writer.write_image(label_dest, result.label_image())
                if overlay_file is not None:
                    overlay_dest = self.out / overlay_file
                    overlay_dest.parent.mkdir(parents=True, exist_ok=True)
                    writer.write_image(overlay_dest, Image.fromarray(result.overlay(image)))
                if self.spec.instances is not None:
                    doc = result.instances(**self.spec.instances).to_json(image=path)
                    instances_dest = self.out / instances_file(key)
                    instances_dest.parent.mkdir(parents=True, exist_ok=True)
                    writer.write_text(instances_dest, json.dumps(doc, separators=(",", ":")) + "\n")
            t_end = time.perf_counter()
        except ZsSegError as exc:
            return row | _failed(str(exc), t_start)
        except Exception as exc:  # one image's failure must not stop the batch
            if os.environ.get("ZSSEG_DEBUG"):
                traceback.print_exc()
            return row | _failed(f"{path}: {type(exc).__name__}: {exc}", t_start)
        h, w = result.label_map.shape
        shares = result.class_shares()
        return row | {
            "status": "ok",
            "label_file": label_file,
            "overlay_file": overlay_file,
            "height": h,
            "width": w,
            "num_proposals": len(result.proposals),
            "class_shares": [shares[c] for c in result.classes],
            "unlabelled_share": float((result.label_map == result.ignore_index).mean()),
            "read_s": t_read - t_start,
            "proposals_s": result.timings.get("proposals"),
            "classify_s": result.timings.get("classify"),
            "assemble_s": result.timings.get("assemble"),
            "write_s": t_end - t_seg,
            "total_s": t_end - t_start,
            "finished_at": time.time(),
        }


def _failed(message: str, t_start: float) -> dict[str, Any]:
    return {
        "status": "failed",
        "error": message,
        "total_s": time.perf_counter() - t_start,
        "finished_at": time.time(),
    }


def sweep_temporaries(out: Path, keys: Iterable[str]) -> None:
    """Remove the hidden temporary files (``AtomicWriter``'s ``.<name>.<random>.tmp``) that workers killed while
    writing ``keys``' outputs left behind. One listing per output folder, however many keys share it. Call it only
    while no worker is writing those keys."""
    wanted: dict[Path, set[str]] = {}
    for key in keys:
        for rel in (*output_files(key, True), instances_file(key)):
            if rel is not None:
                dest = out / rel
                wanted.setdefault(dest.parent, set()).add(dest.name)
    for folder, names in wanted.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if AtomicWriter.destination_name(entry.name) in names:
                Path(entry.path).unlink(missing_ok=True)
