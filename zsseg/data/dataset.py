"""Dataset objects: class metadata, samples, and label decoding from raw label values to contiguous ids.

A dataset is a sorted list of (image, label) file pairs plus a lookup table that maps the raw values stored
in the label files (VOC palette indices, ADE ids 1..150, COCO-Stuff ids 0..181, Cityscapes labelIds ...)
to contiguous class ids ``0..K-1``, or to ``ignore_index``. Raw values that are neither a class nor a known
"ignore" value mean the label file does not belong to this dataset, and reading it raises
:class:`~zsseg.errors.ZsSegError`.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from zsseg.errors import ZsSegError


@dataclass(frozen=True)
class DatasetInfo:
    """Class metadata of a benchmark.

    Attributes:
        name: dataset name as given to :func:`zsseg.data.load_dataset` (e.g. ``"voc"``).
        classes: official class names in label order (index k = class id k); ADE names keep their
            comma-separated synonyms (``"building, edifice"``).
        prompt_names: prompt-friendly names, same order (``"pottedplant"`` -> ``"potted plant"``,
            ``"building, edifice"`` -> ``"building"``).
        ignore_index: value of unlabelled/ignored pixels in the label maps that
            :meth:`SegDataset.load_label` returns (255; 65535 for datasets with more than 255 classes).
        unseen: official names of the zero-shot unseen classes, or empty where the paper defines no split.
        synonyms: per class, the prompt name followed by the other synonyms of the official name;
            empty means ``(prompt_name,)`` for every class.
    """

    name: str
    classes: tuple[str, ...]
    prompt_names: tuple[str, ...]
    ignore_index: int = 255
    unseen: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, ...], ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if len(self.prompt_names) != len(self.classes):
            raise ValueError(f"{len(self.classes)} classes but {len(self.prompt_names)} prompt names")
        if self.synonyms and len(self.synonyms) != len(self.classes):
            raise ValueError(f"{len(self.classes)} classes but {len(self.synonyms)} synonym tuples")
        if 0 <= self.ignore_index < len(self.classes):
            raise ValueError(f"ignore_index {self.ignore_index} is a class id (there are {len(self.classes)})")
        missing = [u for u in self.unseen if u not in self.classes]
        if missing:
            raise ValueError(f"unseen classes {missing} are not among the classes of {self.name}")

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.classes)

    @property
    def unseen_ids(self) -> tuple[int, ...]:
        """Class ids of :attr:`unseen`, in label order."""
        unseen = set(self.unseen)
        return tuple(i for i, name in enumerate(self.classes) if name in unseen)

    def synonyms_of(self, index: int) -> tuple[str, ...]:
        """All names of class ``index``: its prompt name first, then the other synonyms."""
        return self.synonyms[index] if self.synonyms else (self.prompt_names[index],)


@dataclass(frozen=True)
class Sample:
    """One image and its ground-truth label file; ``id`` is unique within the dataset split."""

    id: str
    image_path: Path
    label_path: Path


@dataclass(frozen=True)
class ClassRow:
    """One row of a class table: raw value in the label files, official name, prompt name, synonyms."""

    raw: int
    name: str
    prompt: str
    synonyms: tuple[str, ...]


def make_row(raw: int, name: str, prompt: str | None = None) -> ClassRow:
    """Build a :class:`ClassRow`; without ``prompt`` the first comma-separated synonym of ``name`` is used."""
    name = name.strip()
    parts = tuple(p.strip() for p in name.split(",") if p.strip())
    if not parts:
        raise ValueError(f"empty class name for raw value {raw}")
    prompt = prompt.strip() if prompt and prompt.strip() else parts[0]
    synonyms = (prompt, *(p for p in parts if p != prompt))
    return ClassRow(raw, name, prompt, synonyms)


def parse_class_table(text: str, source: str) -> list[ClassRow]:
    """Parse a class table: ``<raw>\\t<official name>[\\t<prompt name>]`` per line, ``#`` comments.

    Raises:
        ZsSegError: a malformed line (naming ``source`` and the line number).
    """
    rows: list[ClassRow] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) not in (2, 3) or not cols[0].strip().isdigit():
            raise ZsSegError(f"{source}:{lineno}: expected '<raw id>\\t<name>[\\t<prompt>]', got {line!r}")
        rows.append(make_row(int(cols[0]), cols[1], cols[2] if len(cols) == 3 else None))
    return rows


def parse_name_list(text: str, source: str) -> list[ClassRow]:
    """Parse a plain class list: one name per line in label order, optionally prefixed by its index.

    Accepts ``name``, ``<k> name`` and ``<k>: name`` lines (the layouts of ``classes.txt``,
    PASCAL-Context's ``classes59.txt`` and COCO-Stuff's ``labels.txt``); an index, where given, must equal
    the line's position. Row k gets raw value k.

    Raises:
        ZsSegError: an out-of-order index or an empty list, naming ``source``.
    """
    rows: list[ClassRow] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        head, _, rest = entry.partition(" ")
        if rest and head.rstrip(":").isdigit():
            if int(head.rstrip(":")) != len(rows):
                raise ZsSegError(
                    f"{source}:{lineno}: index {head.rstrip(':')} out of order (expected {len(rows)}); "
                    "list the classes in label order"
                )
            entry = rest.strip()
        rows.append(make_row(len(rows), entry))
    if not rows:
        raise ZsSegError(f"{source} lists no class; write one class name per line in label order")
    return rows


def packaged_class_table(filename: str) -> list[ClassRow]:
    """Read a class table shipped in ``zsseg/data/classes/<filename>``."""
    resource = importlib.resources.files("zsseg.data") / "classes" / filename
    return parse_class_table(resource.read_text(encoding="utf-8"), f"zsseg/data/classes/{filename}")


def read_image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError) as err:
        raise ZsSegError(f"cannot read image {path} ({err}); re-download or remove the file") from err
    return height, width


class SegDataset:
    """A split of a semantic segmentation benchmark.

    Attributes:
        info: class metadata.
        samples: image/label pairs sorted by id (deterministic order).
    """

    def __init__(
        self,
        info: DatasetInfo,
        samples: Sequence[Sample],
        rows: Sequence[ClassRow],
        ignore_raw: Iterable[int] = (),
    ) -> None:
        """
        Args:
            info: class metadata; ``info.classes[k]`` must be ``rows[k].name``.
            samples: image/label pairs (sorted by id here).
            rows: the class table: ``rows[k].raw`` is the raw label value of class k.
            ignore_raw: raw label values that mean "ignore" (e.g. 255 in VOC, 0 in ADE-150).
        """
        if [r.name for r in rows] != list(info.classes):
            raise ValueError("class table and DatasetInfo.classes disagree")
        self.info = info
        self.samples: list[Sample] = sorted(samples, key=lambda s: s.id)
        ids = [s.id for s in self.samples]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
            raise ZsSegError(f"{info.name}: duplicate sample ids {dup}; each image must appear once")
        ignore = sorted(set(ignore_raw))
        size = max([r.raw for r in rows] + ignore + [255]) + 1
        lut = np.full(size, -1, dtype=np.int64)  # -1: value not allowed in this dataset's labels
        lut[ignore] = info.ignore_index
        for k, row in enumerate(rows):
            lut[row.raw] = k
        self._lut = lut

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        return f"SegDataset({self.info.name!r}, {len(self)} samples, {self.info.num_classes} classes)"

    def load_image(self, sample: Sample) -> np.ndarray:
        """The image as uint8 (H, W, 3) RGB, in the file's stored pixel order (no EXIF rotation,
        so that it stays aligned with the label map)."""
        try:
            with Image.open(sample.image_path) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise ZsSegError(f"cannot read image {sample.image_path} ({err}); re-download or remove the file") from err

    def load_raw_label(self, sample: Sample) -> np.ndarray:
        """The label file's stored values as an int64 (H, W) array, before any mapping.

        Raises:
            ZsSegError: unreadable file, not single-channel, or a size different from the image's.
        """
        path = sample.label_path
        try:
            with Image.open(path) as im:
                mode = im.mode
                raw = np.asarray(im)
        except (UnidentifiedImageError, OSError) as err:
            raise ZsSegError(f"cannot read label {path} ({err}); re-download or remove the file") from err
        if raw.ndim != 2:
            raise ZsSegError(
                f"label {path} has {raw.shape[-1]} channels (mode {mode}); labels must be single-channel "
                "class-index images (grayscale or palette PNG), not colour renderings"
            )
        image_hw = read_image_size(sample.image_path)
        if raw.shape != image_hw:
            raise ZsSegError(
                f"label {path} is {raw.shape[1]}x{raw.shape[0]} but its image {sample.image_path} is "
                f"{image_hw[1]}x{image_hw[0]}; use the label made for this image, at the image's size"
            )
        return raw.astype(np.int64, copy=False)

    def load_label(self, sample: Sample) -> np.ndarray:
        """The label map as int64 (H, W) with values in ``0..K-1`` or ``info.ignore_index``.

        Raises:
            ZsSegError: unreadable file, wrong size or channel count, or raw values that are neither a class
                of this dataset nor one of its ignore values.
        """
        return self.map_raw(self.load_raw_label(sample), sample.label_path)

    def map_raw(self, raw: np.ndarray, source: Path) -> np.ndarray:
        """Raw label values (int (H, W)) as contiguous class ids ``0..K-1`` or ``info.ignore_index`` (int64).

        Raises:
            ZsSegError: values that are neither a class of this dataset nor one of its ignore values, naming
                ``source``.
        """
        lut = self._lut
        if raw.size and (raw.min() < 0 or raw.max() >= lut.size):
            bad = np.unique(raw[(raw < 0) | (raw >= lut.size)])
        else:
            label = lut[raw]
            if not (label < 0).any():
                return label
            bad = np.unique(raw[label < 0])
        raise ZsSegError(
            f"label {source} has values {bad[:8].tolist()} that are not labels of "
            f"{self.info.name} (allowed: {self.allowed_raw_values_text()}); "
            "check that this file belongs to this dataset"
        )

    def allowed_raw_values_text(self) -> str:
        """Short human-readable description of the raw values allowed in the label files."""
        values = np.flatnonzero(self._lut >= 0)
        runs: list[str] = []
        start = prev = int(values[0])
        for v in [*values[1:].tolist(), None]:
            if v is not None and v == prev + 1:
                prev = v
                continue
            runs.append(f"{start}" if start == prev else f"{start}..{prev}")
            if v is not None:
                start = prev = v
        return ", ".join(runs)

    def validate(self) -> None:
        """Read every label once (checking size and values); raises ZsSegError at the first bad file."""
        for sample in self.samples:
            self.load_label(sample)
