"""Instances on request from ``POST /v1/segment``, in process (FastAPI's TestClient) around a stub segmenter.

The stub labels the red/green/blue strips picture by colour (``zsseg_testing.ColourBackend``); its proposals are
the red strip's two halves and the green and blue strips, so the red class has two objects.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from serve_testing import strips_png

from zsseg.instances import rle
from zsseg.pipeline import Segmenter
from zsseg.proposals.base import Proposals

CLASSES = "red, green, blue"
PNG = strips_png()  # 48 x 96: red, green, blue strips of 32 columns
INSTANCE_KEYS = {"instances_format", "stuff", "stuff_source", "nms_threshold", "part_threshold", "min_area"}
INSTANCE_KEYS |= {"counts", "instances"}


class HalvesProposer:
    """The red strip's top and bottom halves, the green strip, the blue strip; counts its calls."""

    name = "stub:halves"

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray) -> Proposals:
        self.calls += 1
        h, w = image.shape[:2]
        third = w // 3
        masks = np.zeros((4, h, w), dtype=bool)
        masks[0, : h // 2, :third] = True
        masks[1, h // 2 :, :third] = True
        masks[2, :, third : 2 * third] = True
        masks[3, :, 2 * third :] = True
        return Proposals(masks, np.ones(4, np.float32))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Any, Segmenter, HalvesProposer]]:
    """(client, segmenter, proposer) of one app for the module."""
    from fastapi.testclient import TestClient
    from zsseg_testing import ColourBackend

    from zsseg.classify.region import RegionClassifier
    from zsseg.serve.app import create_app

    proposer = HalvesProposer()
    seg = Segmenter(proposer, RegionClassifier(ColourBackend(), templates="single"))  # type: ignore[arg-type]
    with TestClient(create_app(seg)) as client:
        yield client, seg, proposer


def post(client: Any, path: str = "/v1/segment", **fields: str) -> Any:
    return client.post(path, files={"image": ("strips.png", PNG)}, data={"classes": CLASSES} | fields)


def label_map(body: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["label_map_png_base64"]))))


def test_default_answer_has_no_instances(served: tuple[Any, Segmenter, HalvesProposer]) -> None:
    client = served[0]
    for fields in ({}, {"instances": "false"}):
        body = post(client, **fields).json()
        assert not INSTANCE_KEYS & set(body), fields
        assert "instances" not in body["timings_s"]


def test_instances_are_the_results_own(served: tuple[Any, Segmenter, HalvesProposer]) -> None:
    """The answer carries ``Segmentation.instances()`` of the same image, masks as COCO RLE that decode to them;
    the semantic part is the same as without instances."""
    client, seg, _ = served
    plain = post(client).json()
    r = post(client, instances="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= INSTANCE_KEYS and body["instances_format"] == "zsseg.instances/1"
    assert np.array_equal(label_map(body), label_map(plain))
    assert body["class_pixel_share"] == plain["class_pixel_share"] and "instances" in body["timings_s"]

    image = np.asarray(Image.open(io.BytesIO(PNG)).convert("RGB"))
    want = seg.segment(image, CLASSES).instances()
    assert body["counts"] == want.counts() == {"red": 2, "green": 1, "blue": 1}
    assert body["stuff"] == [] and body["stuff_source"] == "builtin"
    assert (body["nms_threshold"], body["part_threshold"], body["min_area"]) == (0.5, 0.8, 64)
    assert body["instances"] == want.to_json()["instances"]
    ids = np.zeros(image.shape[:2], np.int32)
    for i, entry in enumerate(body["instances"]):
        mask = rle.decode(entry["rle"])
        assert np.array_equal(mask, want.mask(i)) and entry["area"] == int(mask.sum())
        assert not ids[mask].any()  # disjoint
        ids[mask] = entry["id"]
        assert (label_map(body)[mask] == entry["class_id"]).all()
        assert entry["label"] == body["classes"][entry["class_id"]] and entry["isthing"]
    red = [e for e in body["instances"] if e["label"] == "red"]
    assert sorted(e["box"] for e in red) == [[0, 0, 32, 24], [0, 24, 32, 48]]


def test_knobs_and_stuff_reach_the_extraction(served: tuple[Any, Segmenter, HalvesProposer]) -> None:
    client = served[0]
    body = post(client, instances="true", stuff="blue, Green").json()
    assert body["stuff"] == ["green", "blue"] and body["stuff_source"] == "user"
    assert body["counts"] == {"red": 2}
    assert [e["isthing"] for e in body["instances"]] == [True, True, False, False]
    body = post(client, instances="true", stuff=",").json()  # no names: every class is a thing
    assert body["stuff"] == [] and body["stuff_source"] == "user" and len(body["counts"]) == 3
    body = post(client, instances="true", nms_threshold="0", part_threshold="off", min_area="0").json()
    assert (body["nms_threshold"], body["part_threshold"], body["min_area"]) == (0.0, None, 0)
    assert body["counts"]["red"] == 1  # IoU >= 0 merges the red halves
    body = post(client, instances="true", min_area="769").json()  # every strip half is 768 pixels
    assert body["counts"] == {"blue": 1, "green": 1} and len(body["instances"]) == 2


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"instances": "true", "stuff": "sky"}, "stuff names 'sky', not in the vocabulary (red, green, blue)"),
        ({"instances": "true", "nms_threshold": "1.5"}, "nms_threshold must be between 0 and 1, got 1.5"),
        ({"instances": "true", "nms_threshold": "-0.1"}, "nms_threshold must be between 0 and 1"),
        ({"instances": "true", "part_threshold": "2"}, "part_threshold must be between 0 and 1"),
        ({"instances": "true", "part_threshold": "half"}, 'part_threshold must be a number between 0 and 1 or "off"'),
        ({"instances": "true", "min_area": "-1"}, "min_area must be an integer >= 0"),
        ({"instances": "true", "min_area": "1.5"}, "invalid request (min_area"),
        ({"instances": "maybe"}, "invalid request (instances"),
        ({"stuff": "red", "min_area": "3"}, "stuff, min_area shape the instances: send instances=true"),
    ],
)
def test_bad_instance_fields_are_422_before_the_model(
    served: tuple[Any, Segmenter, HalvesProposer], fields: dict[str, str], words: str
) -> None:
    client, _, proposer = served
    before = proposer.calls
    r = post(client, **fields)
    assert r.status_code == 422 and words in r.json()["error"], r.text
    assert r.json()["error"].count("\n") == 0
    assert proposer.calls == before  # refused before it queued for the model


def test_png_endpoint_refuses_instances(served: tuple[Any, Segmenter, HalvesProposer]) -> None:
    client = served[0]
    r = post(client, "/v1/segment.png", instances="true")
    assert r.status_code == 422 and "POST /v1/segment for instances" in r.json()["error"]
    assert post(client, "/v1/segment.png").headers["content-type"] == "image/png"


def test_info_and_schema_advertise_the_instance_fields(served: tuple[Any, Segmenter, HalvesProposer]) -> None:
    client = served[0]
    info = client.get("/v1/info").json()["instances"]
    assert info == {
        "format": "zsseg.instances/1",
        "nms_threshold": 0.5,
        "part_threshold": 0.8,
        "min_area": 64,
        "stuff": "builtin",
    }
    schema = client.get("/openapi.json").json()
    ref = schema["paths"]["/v1/segment"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert {"image", "classes", "instances", "stuff", "nms_threshold", "part_threshold", "min_area"} <= set(fields)
