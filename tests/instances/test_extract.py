"""The instance rules (zsseg/instances/extract.py) on scenes whose answer is known."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zsseg.assemble import assemble, upscale_nearest
from zsseg.errors import ZsSegError
from zsseg.instances import Instances, extract_instances, resolve_stuff
from zsseg.instances.panoptic import categories, ids_to_rgb, rgb_to_ids, segments_info


def scene():
    """Two people (one proposed twice), a person's part, a dog, and sky above: (masks, probs, classes)."""
    h, w = 40, 60
    masks = np.zeros((6, h, w), bool)
    masks[0, 20:40, 5:20] = True  # person A
    masks[1, 20:40, 5:21] = True  # a near duplicate of A, one column wider (it wins that column)
    masks[2, 20:40, 30:45] = True  # person B
    masks[3, 30:36, 33:40] = True  # a part of B (B's shirt)
    masks[4, 25:40, 48:58] = True  # dog
    masks[5, 0:20, :] = True  # sky
    probs = np.array(
        [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.95, 0.0, 0.05], [0.1, 0.85, 0.05], [0.0, 0.05, 0.95]],
        np.float32,
    )
    return masks, probs, ("person", "dog", "sky")


def run(masks, probs, classes, **kw):
    a = assemble(masks, probs)
    return a, extract_instances(a.label_map, masks, probs, classes, confidence=a.confidence, **kw)


def test_duplicates_and_parts_merge_and_stuff_is_one_region():
    masks, probs, classes = scene()
    a, inst = run(masks, probs, classes)
    assert inst.counts() == {"person": 2, "dog": 1}
    assert inst.count_line() == "2 x person, 1 x dog"
    assert inst.labels[-1] == "sky" and not inst.is_thing[-1] and inst.stuff_classes == ("sky",)
    assert inst.stuff_source == "builtin"
    assert list(inst.scores[inst.is_thing]) == sorted(inst.scores[inst.is_thing], reverse=True)
    # without merging, the duplicate's sliver and the shirt are instances of their own
    _, raw = run(masks, probs, classes, nms_threshold=1.0, part_threshold=None, min_area=0)
    assert raw.counts()["person"] == 4


def test_segments_are_disjoint_and_carry_their_class_in_the_label_map():
    masks, probs, classes = scene()
    a, inst = run(masks, probs, classes, min_area=0)
    m = inst.masks
    assert (m.sum(0) <= 1).all()
    for i in range(len(inst)):
        assert (a.label_map[m[i]] == inst.class_ids[i]).all()
    np.testing.assert_array_equal(inst.areas, m.reshape(len(inst), -1).sum(1))


def test_boxes_are_pixel_edges():
    id_map = np.zeros((10, 12), np.int32)
    id_map[2:5, 3:9] = 1
    inst = Instances(id_map, np.zeros(1, np.int32), np.ones(1, np.float32), np.ones(1, bool), ("dog",))
    assert inst.boxes.tolist() == [[3, 2, 9, 5]] and inst.areas.tolist() == [18]


def test_fragments_below_min_area_are_dropped_but_keep_their_class():
    masks, probs, classes = scene()
    a, kept = run(masks, probs, classes, nms_threshold=1.0, part_threshold=None, min_area=0)
    _, cut = run(masks, probs, classes, nms_threshold=1.0, part_threshold=None, min_area=50)
    assert len(cut) < len(kept) and (cut.areas >= 50).all()
    assert (a.label_map[(kept.id_map > 0) & (cut.id_map == 0)] == 0).all()  # still person in the label map


def test_user_stuff_and_no_stuff():
    masks, probs, classes = scene()
    _, inst = run(masks, probs, classes, stuff=["person", "sky"])
    assert inst.counts() == {"dog": 1} and inst.stuff_source == "user"
    assert inst.labels.count("person") == 1  # one region for the class
    _, none = run(masks, probs, classes, stuff=[])
    assert none.counts()["sky"] == 1


def test_bad_knobs_and_unknown_stuff_are_one_line_errors():
    masks, probs, classes = scene()
    with pytest.raises(ZsSegError, match=r"--stuff names 'road', not in the vocabulary"):
        run(masks, probs, classes, stuff="sky, road")
    with pytest.raises(ZsSegError, match=r"nms_threshold \(--nms-threshold\) must be a number in \[0, 1\]"):
        run(masks, probs, classes, nms_threshold=1.5)
    with pytest.raises(ZsSegError, match=r"min_area \(--min-area\) must be an integer >= 0"):
        run(masks, probs, classes, min_area=-1)


def test_builtin_stuff_matches_case_and_plurals():
    split = resolve_stuff(["Sky", "trees", "person", "Brick Wall", "table"])
    assert split.stuff == (True, True, False, True, False)


def test_working_resolution_is_upscaled_like_the_label_map():
    masks, probs, classes = scene()
    a = assemble(masks, probs)
    big = upscale_nearest(a.label_map, 97, 151)
    inst = extract_instances(big, masks, probs, classes, min_area=0)
    assert inst.image_size == (97, 151)
    for i in range(len(inst)):
        assert (big[inst.mask(i)] == inst.class_ids[i]).all()
    small = extract_instances(a.label_map, masks, probs, classes, min_area=0)
    np.testing.assert_array_equal(upscale_nearest(small.id_map, 97, 151), inst.id_map)


def test_unlabelled_pixels_are_void():
    masks, probs, classes = scene()
    a = assemble(masks, probs, unlabelled_threshold=0.99)
    inst = extract_instances(a.label_map, masks, probs, classes)
    assert (inst.id_map[a.label_map == 255] == 0).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 4))
def test_random_scenes_keep_the_panoptic_invariants(seed, n, k):
    rng = np.random.default_rng(seed)
    h, w = 24, 30
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        y0, x0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
        masks[i, y0 : rng.integers(y0 + 1, h + 1), x0 : rng.integers(x0 + 1, w + 1)] = True
    probs = rng.dirichlet(np.ones(k), n).astype(np.float32)
    classes = tuple(f"class {c}" for c in range(k))
    a, inst = run(masks, probs, classes, min_area=0)
    m = inst.masks
    assert (m.sum(0) <= 1).all()
    for i in range(len(inst)):
        assert (a.label_map[m[i]] == inst.class_ids[i]).all()
    if masks.any(axis=0).all():  # every pixel covered, none below a size cut: every pixel is in a segment
        assert (inst.id_map > 0).all()


def test_json_round_trip_and_selection():
    masks, probs, classes = scene()
    _, inst = run(masks, probs, classes)
    doc = inst.to_json(image="x.jpg")
    assert doc["format"] == "zsseg.instances/1" and doc["counts"] == {"person": 2, "dog": 1}
    back = Instances.from_json(doc)
    np.testing.assert_array_equal(back.id_map, inst.id_map)
    np.testing.assert_array_equal(back.class_ids, inst.class_ids)
    assert back.settings == inst.settings
    things = inst[inst.is_thing]
    assert len(things) == 3 and things.id_map.max() == 3 and things.is_thing.all()
    with pytest.raises(IndexError):
        inst[np.array([True])]


def test_validation_states_expected_and_actual_shapes():
    with pytest.raises(ValueError, match=r"scores must be float32 \(1,\), got float32 \(2,\)"):
        Instances(np.zeros((2, 2), np.int32), np.zeros(1, np.int32), np.zeros(2, np.float32), np.ones(1, bool), ("a",))


def test_panoptic_png_round_trips_and_segments_info_matches():
    masks, probs, classes = scene()
    _, inst = run(masks, probs, classes)
    ids = rgb_to_ids(ids_to_rgb(inst.id_map))
    np.testing.assert_array_equal(ids, inst.id_map)
    info = segments_info(inst)
    assert [s["id"] for s in info] == list(range(1, len(inst) + 1))
    for s in info:
        assert s["area"] == int((ids == s["id"]).sum())
        assert classes[s["category_id"] - 1] == inst.labels[s["id"] - 1]
    assert [c["isthing"] for c in categories(inst)] == [1, 1, 0]
    big = np.zeros((300, 300), np.int32)
    big[0, 0] = 70000  # ids past 65535 use the blue channel
    assert rgb_to_ids(ids_to_rgb(big))[0, 0] == 70000
