"""Readers of the benchmarks' official folder layouts.

``root`` is the folder that holds the datasets' top folders (like detectron2's ``DETECTRON2_DATASETS``)::

    root/
      VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/<split>.txt}
      ADEChallengeData2016/{images,annotations}/{training,validation}/, objectInfo150.txt
      ADE20K_2021_17_01/{images_detectron2,annotations_detectron2}/{training,validation}/, classes847.txt
      coco_stuff164k/{images,annotations}/{train2017,val2017}/
      cityscapes/{leftImg8bit,gtFine}/<split>/<city>/
      pascal_context/annotations_detectron2/{pc59_val,pc459_val}/, JPEGImages/, classes459.txt

A dataset's own top folder (e.g. ``root/VOCdevkit`` or ``root/VOCdevkit/VOC2012``) is accepted as ``root``
too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from zsseg.data.dataset import (
    ClassRow,
    DatasetInfo,
    Sample,
    SegDataset,
    packaged_class_table,
    parse_class_table,
    parse_name_list,
)
from zsseg.errors import ZsSegError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VOC_UNSEEN = ("pottedplant", "sheep", "sofa", "train", "tvmonitor")
COCO_UNSEEN = (
    "frisbee", "skateboard", "cardboard", "carrot", "scissors", "suitcase", "giraffe", "cow",
    "road", "wall-concrete", "tree", "grass", "river", "clouds", "playingfield",
)  # fmt: skip
LARGE_IGNORE = 65535  # ignore value of the uint16 label maps of ADE-847 and PASCAL-Context-459


def _find_top(root: Path, candidates: Sequence[str], markers: Sequence[str], layout: str, name: str) -> Path:
    """First folder ``root/<candidate>`` holding every marker path; ZsSegError naming ``layout`` if none."""
    if not root.is_dir():
        raise ZsSegError(f"dataset root {root} does not exist; point it at the folder that holds {layout}")
    for cand in candidates:
        top = (root / cand) if cand else root
        if all((top / m).exists() for m in markers):
            return top
    raise ZsSegError(f"no {name} dataset found under {root}: expected {layout}")


def _split_dir(name: str, split: str, table: dict[str, str]) -> str:
    if split not in table:
        raise ZsSegError(f"unknown split {split!r} for {name}; choose one of {sorted(table)}")
    return table[split]


def _pair_by_stem(
    image_dir: Path,
    label_dir: Path,
    *,
    label_suffixes: Sequence[str] = (".png",),
    image_suffixes: Sequence[str] = IMAGE_SUFFIXES,
    image_tail: str = "",
    label_tail: str = "",
    recursive: bool = False,
) -> list[Sample]:
    """Match images and labels by file stem (minus ``image_tail`` / ``label_tail``).

    Raises:
        ZsSegError: a folder is missing, empty, or an image has no label (or a label no image).
    """
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise ZsSegError(f"folder {d} does not exist; the dataset layout is incomplete")

    def index(folder: Path, suffixes: Sequence[str], tail: str) -> dict[str, Path]:
        files = folder.rglob("*") if recursive else folder.iterdir()
        out: dict[str, Path] = {}
        for f in files:
            if f.suffix.lower() in suffixes and f.stem.endswith(tail) and f.is_file():
                key = f.stem[: len(f.stem) - len(tail)] if tail else f.stem
                if key in out:
                    raise ZsSegError(f"{out[key]} and {f} have the same name; keep one file per sample")
                out[key] = f
        return out

    images = index(image_dir, image_suffixes, image_tail)
    labels = index(label_dir, label_suffixes, label_tail)
    if not images:
        raise ZsSegError(f"no images in {image_dir}; put the split's images there")
    for key, img in sorted(images.items()):
        if key not in labels:
            raise ZsSegError(f"image {img} has no label in {label_dir}; add {key}{label_tail}"
                             f"{label_suffixes[0]} or remove the image")  # fmt: skip
    for key, lab in sorted(labels.items()):
        if key not in images:
            raise ZsSegError(f"label {lab} has no image in {image_dir}; add the image or remove the label")
    return [Sample(key, images[key], labels[key]) for key in sorted(images)]


def _make(
    name: str,
    rows: Sequence[ClassRow],
    samples: Sequence[Sample],
    ignore_raw: Sequence[int],
    unseen: Sequence[str] = (),
    ignore_index: int = 255,
) -> SegDataset:
    info = DatasetInfo(
        name=name,
        classes=tuple(r.name for r in rows),
        prompt_names=tuple(r.prompt for r in rows),
        ignore_index=ignore_index,
        unseen=tuple(unseen),
        synonyms=tuple(r.synonyms for r in rows),
    )
    return SegDataset(info, samples, rows, ignore_raw)


# ---------------------------------------------------------------------------------------------------- VOC


def _voc_samples(root: Path, split: str) -> list[Sample]:
    layout = "VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/<split>.txt}"
    top = _find_top(root, ("VOCdevkit/VOC2012", "VOC2012", ""), ("JPEGImages", "SegmentationClass"), layout, "VOC")
    list_file = top / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not list_file.is_file():
        raise ZsSegError(f"split list {list_file} does not exist; VOC splits are train, val and trainval")
    ids = sorted({line.strip() for line in list_file.read_text().splitlines() if line.strip()})
    samples = []
    for i in ids:
        image, label = top / "JPEGImages" / f"{i}.jpg", top / "SegmentationClass" / f"{i}.png"
        if not image.is_file():
            raise ZsSegError(f"image {image} (listed in {list_file}) is missing; add it or drop {i} from the list")
        if not label.is_file():
            raise ZsSegError(f"image {image} has no label {label}; add it or drop {i} from {list_file}")
        samples.append(Sample(i, image, label))
    return samples


def _voc(root: Path, split: str) -> SegDataset:
    return _make("voc", packaged_class_table("voc.txt"), _voc_samples(root, split), [255], VOC_UNSEEN)


def _voc20(root: Path, split: str) -> SegDataset:
    rows = [r for r in packaged_class_table("voc.txt") if r.raw != 0]  # background becomes ignore
    return _make("voc20", rows, _voc_samples(root, split), [0, 255], VOC_UNSEEN)


# ---------------------------------------------------------------------------------------------------- ADE


def _ade150(root: Path, split: str) -> SegDataset:
    layout = "ADEChallengeData2016/{images,annotations}/{training,validation}/"
    top = _find_top(root, ("ADEChallengeData2016", ""), ("images", "annotations"), layout, "ADE-150")
    sub = _split_dir("ade150", split, {"train": "training", "val": "validation"})
    samples = _pair_by_stem(top / "images" / sub, top / "annotations" / sub)
    info_file = top / "objectInfo150.txt"
    rows = _read_object_info(info_file) if info_file.is_file() else packaged_class_table("ade150.txt")
    return _make("ade150", rows, samples, [0])


def _read_object_info(path: Path) -> list[ClassRow]:
    """Class rows from ADE's ``objectInfo150.txt`` (tab-separated ``Idx Ratio Train Val Name``)."""
    lines = [ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    body = "\n".join(f"{cols[0]}\t{cols[-1]}" for cols in (ln.split("\t") for ln in lines[1:]))
    rows = parse_class_table(body, str(path))
    if [r.raw for r in rows] != list(range(1, 151)):
        raise ZsSegError(f"{path} should list ids 1..150 in order; restore the original objectInfo150.txt")
    return rows


def _large_class_list(top: Path, filename: str, count: int, name: str) -> list[ClassRow]:
    path = top / filename
    if not path.is_file():
        raise ZsSegError(
            f"{name} needs its {count} class names, which zsseg does not ship: write them one per line, in "
            f"label order, to {path}"
        )
    rows = parse_name_list(path.read_text(encoding="utf-8-sig"), str(path))
    if len(rows) != count:
        raise ZsSegError(f"{path} lists {len(rows)} classes, expected {count}; fix the class list")
    return rows


def _ade847(root: Path, split: str) -> SegDataset:
    layout = "ADE20K_2021_17_01/{images_detectron2,annotations_detectron2}/{training,validation}/ + classes847.txt"
    markers = ("images_detectron2", "annotations_detectron2")
    top = _find_top(root, ("ADE20K_2021_17_01", ""), markers, layout, "ADE-847")
    sub = _split_dir("ade847", split, {"train": "training", "val": "validation"})
    samples = _pair_by_stem(
        top / "images_detectron2" / sub, top / "annotations_detectron2" / sub, label_suffixes=(".tif", ".png")
    )
    rows = _large_class_list(top, "classes847.txt", 847, "ade847")
    return _make("ade847", rows, samples, [LARGE_IGNORE], ignore_index=LARGE_IGNORE)


# ---------------------------------------------------------------------------------------------- COCO-Stuff


def _coco_stuff171(root: Path, split: str) -> SegDataset:
    layout = "coco_stuff164k/{images,annotations}/{train2017,val2017}/"
    top = _find_top(root, ("coco_stuff164k", ""), ("images", "annotations"), layout, "COCO-Stuff")
    sub = _split_dir("coco-stuff171", split, {"train": "train2017", "val": "val2017"})
    samples = _pair_by_stem(top / "images" / sub, top / "annotations" / sub)
    rows = packaged_class_table("coco_stuff171.txt")
    used = {r.raw for r in rows}
    ignore = [255, *(raw for raw in range(182) if raw not in used)]  # unused thing ids -> ignore
    return _make("coco-stuff171", rows, samples, ignore, COCO_UNSEEN)


# ---------------------------------------------------------------------------------------------- Cityscapes


def _cityscapes(root: Path, split: str) -> SegDataset:
    layout = "cityscapes/{leftImg8bit,gtFine}/<split>/<city>/"
    top = _find_top(root, ("cityscapes", ""), ("leftImg8bit", "gtFine"), layout, "Cityscapes")
    sub = _split_dir("cityscapes", split, {"train": "train", "val": "val", "test": "test"})
    samples = _pair_by_stem(
        top / "leftImg8bit" / sub,
        top / "gtFine" / sub,
        image_suffixes=(".png",),
        image_tail="_leftImg8bit",
        label_tail="_gtFine_labelIds",
        recursive=True,
    )
    rows = packaged_class_table("cityscapes.txt")
    used = {r.raw for r in rows}
    return _make("cityscapes", rows, samples, [raw for raw in range(34) if raw not in used])


# ------------------------------------------------------------------------------------------ PASCAL-Context


def _pcontext(root: Path, split: str, count: int) -> SegDataset:
    name = f"pc{count}"
    ann = "annotations_detectron2"
    layout = f"pascal_context/{ann}/{name}_<split>/, images in pascal_context/JPEGImages/ or VOCdevkit/VOC2010/"
    top = _find_top(root, ("pascal_context", "VOCdevkit/VOC2010", "VOC2010", ""), (ann,), layout, name)
    sub = _split_dir(name, split, {"train": f"{name}_train", "val": f"{name}_val"})
    voc2010 = Path("VOCdevkit") / "VOC2010" / "JPEGImages"
    image_dirs = [top / "JPEGImages", root / voc2010, top.parent / "JPEGImages", top.parent / voc2010]
    image_dir = next((d for d in image_dirs if d.is_dir()), None)
    if image_dir is None:
        raise ZsSegError(f"no PASCAL-Context images found; expected one of {[str(d) for d in image_dirs[:2]]}")
    label_dir = top / ann / sub
    if not label_dir.is_dir():
        raise ZsSegError(f"folder {label_dir} does not exist; expected {layout}")
    labels = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff"))
    if not labels:
        raise ZsSegError(f"no label files in {label_dir}; put the {name} {split} labels there")
    samples = []
    for lab in labels:  # the image folder holds all VOC2010 images: the labels define the split
        image = image_dir / f"{lab.stem}.jpg"
        if not image.is_file():
            raise ZsSegError(f"label {lab} has no image {image}; add the VOC2010 image or remove the label")
        samples.append(Sample(lab.stem, image, lab))
    if count == 59:
        return _make(name, packaged_class_table("pc59.txt"), samples, [255])
    rows = _large_class_list(top, "classes459.txt", 459, name)
    return _make(name, rows, samples, [LARGE_IGNORE], ignore_index=LARGE_IGNORE)


def _pc59(root: Path, split: str) -> SegDataset:
    return _pcontext(root, split, 59)


def _pc459(root: Path, split: str) -> SegDataset:
    return _pcontext(root, split, 459)


# ------------------------------------------------------------------------------------------------- folder


def _folder(root: Path, split: str) -> SegDataset:
    """Any ``images/`` + ``labels/`` (PNG class-index maps matched by stem) + ``classes.txt``; no splits
    (``split`` is ignored). Label values are ``0..K-1`` and 255 = ignore (65535 when K > 255)."""
    layout = "<root>/images/, <root>/labels/ (<image stem>.png), <root>/classes.txt (one name per line)"
    top = _find_top(root, ("",), ("images", "labels", "classes.txt"), layout, "folder")
    from zsseg.io import read_text  # UTF-8 with or without BOM; another encoding is one clear line

    rows = parse_name_list(read_text(top / "classes.txt", "class list"), str(top / "classes.txt"))
    names = [r.name for r in rows]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ZsSegError(f"{top / 'classes.txt'} lists {dup} more than once; class names must be unique")
    ignore = 255 if len(rows) <= 255 else LARGE_IGNORE
    samples = _pair_by_stem(top / "images", top / "labels", label_suffixes=(".png", ".tif", ".tiff"))
    return _make("folder", rows, samples, [ignore], ignore_index=ignore)


BUILDERS: dict[str, Callable[[Path, str], SegDataset]] = {
    "voc": _voc,
    "voc20": _voc20,
    "ade150": _ade150,
    "ade847": _ade847,
    "coco-stuff171": _coco_stuff171,
    "pc59": _pc59,
    "pc459": _pc459,
    "cityscapes": _cityscapes,
    "folder": _folder,
}
DATASET_NAMES: tuple[str, ...] = tuple(BUILDERS)


def load_dataset(name: str, root: str | Path, split: str = "val") -> SegDataset:
    """Open split ``split`` of benchmark ``name`` (one of :data:`DATASET_NAMES`) under ``root``.

    Only file names are read here; images and labels are read (and checked) by
    :meth:`SegDataset.load_image` / :meth:`SegDataset.load_label`, or all at once by
    :meth:`SegDataset.validate`.

    Raises:
        ZsSegError: unknown name or split, missing root or layout, an image without label (or vice versa).
    """
    if name not in BUILDERS:
        raise ZsSegError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return BUILDERS[name](Path(root).expanduser(), split)
