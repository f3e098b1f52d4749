"""Instance ground-truth readers on the real files in ../shared/data (skipped where they are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zsseg.data.instances import load_instance_dataset

pytestmark = pytest.mark.data


@pytest.mark.parametrize(
    ("name", "split", "top", "count"),
    [("voc20", "val", "VOCdevkit", 11), ("voc20", "train", "VOCdevkit", 24), ("cityscapes", "val", "cityscapes", 2),
     ("cityscapes", "train", "cityscapes", 12), ("coco-stuff171", "val", "coco_stuff164k", 1)],
)  # fmt: skip
def test_real_instance_ground_truth(data_root: Path, name: str, split: str, top: str, count: int) -> None:
    if not (data_root / top).is_dir():
        pytest.skip(f"{data_root / top} is absent")
    if name == "coco-stuff171":
        pytest.importorskip("pycocotools")
    ds = load_instance_dataset(name, data_root, split)
    assert len(ds) == count
    sample = ds.samples[0]
    t = ds.load_target(sample)
    assert t.image_size == ds.load_image(sample).shape[:2]
    assert len(t) > 0 and t.is_thing.any()
    assert (t.id_map[t.void] == 0).all()
    assert ((t.class_ids >= 0) & (t.class_ids < ds.info.num_classes)).all()
    semantic = ds.semantic.load_label(sample) if name != "coco-stuff171" else None
    if semantic is not None:  # every segment pixel carries the segment's class in the semantic label map
        seg = t.id_map > 0
        assert np.array_equal(semantic[seg], t.class_ids[t.id_map[seg] - 1])
    if name == "coco-stuff171":
        assert int(t.is_thing.sum()) == 54 and t.iscrowd.sum() == 1
