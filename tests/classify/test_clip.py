"""The CLIP backend with a tiny randomly initialised open_clip model, checked against open_clip itself."""

import json

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from zsseg.classify import RegionClassifier
from zsseg.errors import ZsSegError
from zsseg.models import load_backend
from zsseg.models.clip.load import cached_weights, split_spec
from zsseg.precision import cpu_has_fast_bfloat16

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    (folder / "zsseg-tiny-clip.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(folder / "zsseg-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("zsseg-tiny-clip")
    path = folder / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    return path


def test_loads_local_checkpoint_and_matches_open_clip(tiny_checkpoint):
    backend = load_backend(f"clip:zsseg-tiny-clip/{tiny_checkpoint}")
    assert backend.name == f"clip:zsseg-tiny-clip/{tiny_checkpoint}"
    assert backend.input_size == 32
    ref, _, preprocess = open_clip.create_model_and_transforms("zsseg-tiny-clip", pretrained=str(tiny_checkpoint))
    ref.eval()
    tokenizer = open_clip.get_tokenizer("zsseg-tiny-clip")
    texts = ["a photo of a cat.", "a photo of a sofa."]
    with torch.no_grad():
        want_text = F.normalize(ref.encode_text(tokenizer(texts)), dim=-1)
    torch.testing.assert_close(backend.encode_texts(texts), want_text, rtol=1e-5, atol=1e-6)

    # An image already at the input size, with a full mask, is exactly open_clip's preprocessing.
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        want_img = F.normalize(ref.encode_image(preprocess(Image.fromarray(img))[None]), dim=-1)
    clf = RegionClassifier(backend, templates="single")
    got = clf.region_embeddings(img, np.ones((1, 32, 32), bool))
    torch.testing.assert_close(got, want_img, rtol=1e-4, atol=1e-5)

    probs = clf.classify(img, np.ones((1, 32, 32), bool), ["cat", "sofa"])
    with torch.no_grad():
        want_txt = F.normalize(ref.encode_text(tokenizer(["a photo of a cat.", "a photo of a sofa."])), dim=-1)
        want = (ref.logit_scale.exp() * want_img @ want_txt.T).softmax(-1)
    np.testing.assert_allclose(probs, want.numpy(), rtol=1e-4, atol=1e-6)


def test_checkpoint_tensors_are_assigned_not_copied_into_random_weights(tiny_checkpoint, tmp_path, monkeypatch):
    """The model built on meta with the checkpoint assigned is open_clip's model, causal mask included."""
    from zsseg.models.clip import load as clip

    spec = f"zsseg-tiny-clip/{tiny_checkpoint}"
    model = clip._create_assigned(spec)
    assert model is not None
    ref = open_clip.create_model("zsseg-tiny-clip", pretrained=str(tiny_checkpoint))
    got, want = model.state_dict(keep_vars=True), ref.state_dict(keep_vars=True)
    assert got.keys() == want.keys()
    for name, tensor in want.items():
        assert type(got[name]) is type(tensor) and got[name].requires_grad == tensor.requires_grad, name
        assert got[name].device.type == "cpu" and torch.equal(got[name], tensor), name
    torch.testing.assert_close(model.attn_mask, ref.attn_mask)
    assert open_clip.get_model_preprocess_cfg(model) == open_clip.get_model_preprocess_cfg(ref)

    (tmp_path / "weights.npz").write_bytes(b"")  # big_vision weights: open_clip's own loader copies them
    assert clip._create_assigned(f"zsseg-tiny-clip/{tmp_path / 'weights.npz'}") is None

    real_full = torch.full  # a tensor the checkpoint does not hold and zsseg does not rebuild: open_clip's path
    monkeypatch.setattr(torch, "full", lambda *a, **k: real_full(*a, **k).to("meta"))
    assert clip._create_assigned(spec) is None
    monkeypatch.undo()
    monkeypatch.setattr(open_clip, "create_model", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no meta")))
    assert clip._create_assigned(spec) is None


def test_openai_weights_run_the_quick_gelu_they_were_trained_with(monkeypatch, tiny_checkpoint):
    """open_clip 3 builds ViT-B-16 with nn.GELU for the ``openai`` tag and only warns; zsseg asks for QuickGELU."""
    from zsseg.models.clip import load as clip

    assert clip.trained_with_quick_gelu("ViT-B-16/openai") and clip.trained_with_quick_gelu("RN50/openai")
    assert not clip.trained_with_quick_gelu("ViT-B-16/laion2b_s34b_b88k")
    assert not clip.trained_with_quick_gelu("hf-hub:timm/some-repo")  # its hub config carries quick_gelu itself
    assert not clip.trained_with_quick_gelu(f"zsseg-tiny-clip/{tiny_checkpoint}")  # a file: the ARCH says
    built = []

    def create_model(arch, **kwargs):
        built.append(kwargs["force_quick_gelu"])
        raise RuntimeError("stop here")

    monkeypatch.setattr(open_clip, "create_model", create_model)
    monkeypatch.setattr(clip, "cached_weights", lambda spec: "/cache/ViT-B-16.safetensors")
    with pytest.raises(ZsSegError):
        clip.load_clip("ViT-B-16/openai")
    assert built == [True, True]  # the meta build and open_clip's own path


def test_safetensors_read_tensor_by_tensor_equals_load_file(tmp_path):
    from safetensors.torch import load_file, save_file

    from zsseg.models.clip.checkpoints import read_safetensors

    tensors = {
        "visual.proj": torch.randn(8, 4),
        "logit_scale": torch.tensor(4.6052),
        "half": torch.randn(3, 2).half(),
        "brain": torch.randn(5).bfloat16(),
        "ids": torch.arange(6).reshape(2, 3),
        "flags": torch.tensor([True, False]),
        "empty": torch.empty(0, 4),
    }
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    want = load_file(str(path))
    got = read_safetensors(str(path))
    assert got is not None and got.keys() == want.keys()
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name
    cast = read_safetensors(str(path), torch.bfloat16)
    assert cast is not None
    assert cast["visual.proj"].dtype == torch.bfloat16 and torch.equal(
        cast["visual.proj"], want["visual.proj"].bfloat16()
    )
    assert cast["logit_scale"].dtype == torch.float32 and cast["ids"].dtype == torch.int64  # kept
    header = path.read_bytes()
    (tmp_path / "u16.safetensors").write_bytes(header.replace(b'"F16"', b'"U16"', 1))  # a dtype it does not read
    assert read_safetensors(str(tmp_path / "u16.safetensors")) is None
    (tmp_path / "cut.safetensors").write_bytes(header[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_safetensors(str(tmp_path / "cut.safetensors"))


def test_torch_checkpoint_read_cast_equals_load_then_cast(tmp_path):
    from zsseg.models.clip.checkpoints import read_torch_cast

    tensors = {"w": torch.randn(300, 700), "logit_scale": torch.tensor(4.6), "ids": torch.arange(5), "h": torch.ones(3)}
    for layout in (tensors, {"state_dict": tensors, "epoch": 3}):
        path = tmp_path / "c.pt"
        torch.save(layout, path)
        got = read_torch_cast(str(path), torch.bfloat16)
        assert got is not None and got.keys() == tensors.keys()
        assert got["w"].dtype == torch.bfloat16 and torch.equal(got["w"], tensors["w"].bfloat16())
        for name in ("logit_scale", "ids"):  # kept as they are, copied out of the map
            assert got[name].dtype == tensors[name].dtype and torch.equal(got[name], tensors[name])
    assert read_torch_cast(str(path), torch.float32) is None and read_torch_cast(str(path), None) is None
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert read_torch_cast(str(tmp_path / "junk.pt"), torch.bfloat16) is None  # the usual reader reports it


def test_bf16_clip_from_a_torch_checkpoint_is_open_clips_model_cast(tiny_checkpoint, monkeypatch):
    from zsseg.models.clip import checkpoints

    reads = []
    read = checkpoints.read_torch_cast
    monkeypatch.setattr(checkpoints, "read_torch_cast", lambda path, dtype: reads.append(dtype) or read(path, dtype))
    backend = load_backend(f"clip:zsseg-tiny-clip/{tiny_checkpoint}", precision="bf16")
    if backend.dtype != torch.bfloat16:
        pytest.skip("this CPU has no native bf16")
    ref = open_clip.create_model("zsseg-tiny-clip", pretrained=str(tiny_checkpoint)).to(torch.bfloat16)
    for name, tensor in ref.state_dict().items():
        assert torch.equal(backend.model.state_dict()[name], tensor), name
    assert reads == [torch.bfloat16]


def test_a_safetensors_clip_loads_cast_and_leaves_open_clip_as_it_was(tiny_checkpoint, tmp_path, monkeypatch):
    import open_clip.factory
    from safetensors.torch import save_file

    from zsseg.models.clip import checkpoints

    reads = []
    read = checkpoints.read_safetensors
    monkeypatch.setattr(
        checkpoints, "read_safetensors", lambda path, dtype=None: reads.append(dtype) or read(path, dtype)
    )

    state = torch.load(tiny_checkpoint, weights_only=True)["state_dict"]
    path = tmp_path / "tiny.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(path))
    loader = open_clip.factory.load_state_dict
    for precision in ("fp32", "bf16"):
        got = load_backend(f"clip:zsseg-tiny-clip/{path}", precision=precision)
        want = load_backend(f"clip:zsseg-tiny-clip/{tiny_checkpoint}", precision=precision)
        assert got.logit_scale == want.logit_scale and got.dtype == want.dtype
        for name, tensor in want.model.state_dict().items():
            assert torch.equal(got.model.state_dict()[name], tensor), name
    assert open_clip.factory.load_state_dict is loader
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ZsSegError, match="could not read CLIP checkpoint .*truncated"):
        load_backend(f"clip:zsseg-tiny-clip/{path}", precision="bf16")
    assert open_clip.factory.load_state_dict is loader
    bf16 = torch.bfloat16 if cpu_has_fast_bfloat16() else torch.float32
    assert reads == [torch.float32, bf16, bf16]  # the last: the truncated file


def test_unreadable_or_mismatched_checkpoint_is_one_clear_line(tiny_checkpoint, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ZsSegError, match="could not read CLIP checkpoint .*corrupt.pt") as err:
        load_backend(f"clip:zsseg-tiny-clip/{corrupt}")
    assert "\n" not in str(err.value)
    wider = {**TINY, "vision_cfg": {**TINY["vision_cfg"], "width": 64}}
    (tmp_path / "zsseg-tiny-clip-wide.json").write_text(json.dumps(wider))
    open_clip.add_model_config(tmp_path / "zsseg-tiny-clip-wide.json")
    with pytest.raises(ZsSegError, match="does not fit architecture zsseg-tiny-clip-wide .*size mismatch") as err:
        load_backend(f"clip:zsseg-tiny-clip-wide/{tiny_checkpoint}")
    assert "\n" not in str(err.value) and "open_clip.list_models()" in str(err.value)


def test_local_dir_folder_loads_and_a_bad_one_is_one_line(tiny_checkpoint, tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY, "preprocess_cfg": {}}))
    state = torch.load(tiny_checkpoint, weights_only=True)["state_dict"]
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    backend = load_backend(f"clip:local-dir:{folder}")
    ref = load_backend(f"clip:zsseg-tiny-clip/{tiny_checkpoint}")
    texts = ["a photo of a cat."]
    torch.testing.assert_close(backend.encode_texts(texts), ref.encode_texts(texts))
    for bad in (tmp_path / "missing", tmp_path):  # no folder; a folder without config and weights
        with pytest.raises(ZsSegError, match="needs open_clip_config.json and a checkpoint") as err:
            load_backend(f"clip:local-dir:{bad}")
        assert "\n" not in str(err.value)


def testdownload_hint_names_the_call_that_downloads():
    from zsseg.models.clip.load import download_hint

    assert "create_model('ViT-B-16', pretrained='openai')" in download_hint("ViT-B-16/openai")
    assert "create_model('hf-hub:timm/some-repo')" in download_hint("hf-hub:timm/some-repo")


def test_missing_weights_offline_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert cached_weights("ViT-B-16/openai") is None or True  # a developer may have them cached
    if cached_weights("ViT-B-16/openai") is None:
        with pytest.raises(ZsSegError, match="conse:efficientnet-lite0"):
            load_backend("clip:ViT-B-16/openai")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("clip:NoSuchArch/openai", "unknown CLIP architecture"),
        ("clip:ViT-B-16/nosuchtag", "known tags are"),
        ("clip:ViT-B-16", "ARCH/PRETRAINED"),
        ("clip:ViT-B-16//no/such/file.pt", "checkpoint file not found"),
        ("nonsense", "unknown model"),
        ("conse:resnet", "efficientnet-lite0"),
    ],
)
def test_bad_model_names(model, message):
    with pytest.raises(ZsSegError, match=message):
        load_backend(model)


def test_split_spec():
    assert split_spec("ViT-B-16/openai") == ("ViT-B-16", "openai")
    assert split_spec("ViT-B-16//abs/x.pt") == ("ViT-B-16", "/abs/x.pt")
    assert split_spec("hf-hub:org/repo") == ("hf-hub:org/repo", None)


def test_dense_regions_through_the_clip_backend(tiny_checkpoint):
    """regions=dense with a CLIP backend: a full mask at the input size is the crop path's embedding; bf16 runs."""
    backend = load_backend(f"clip:zsseg-tiny-clip/{tiny_checkpoint}")
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    full = np.ones((1, 32, 32), bool)
    assert RegionClassifier(backend, templates="single", regions="auto", dense_size=32).regions == "hybrid"
    dense = RegionClassifier(backend, templates="single", regions="dense", dense_size=32)
    crops = RegionClassifier(backend, templates="single")
    torch.testing.assert_close(
        dense.region_embeddings(img, full), crops.region_embeddings(img, full), rtol=1e-4, atol=1e-5
    )
    half = load_backend(f"clip:zsseg-tiny-clip/{tiny_checkpoint}", precision="bf16")
    assert half.dtype in (torch.bfloat16, torch.float32)  # fp32 where the CPU has no native bf16
    assert half.logit_scale == pytest.approx(backend.logit_scale, rel=1e-6)  # read before the cast, not rounded
    probs = RegionClassifier(half, regions="dense", dense_size=48).classify(img, full, ["cat", "sofa"])
    assert probs.shape == (1, 2) and probs.dtype == np.float32


def test_default_clip_hosting_copy_matches_open_clip(monkeypatch, tmp_path):
    """``auto`` looks for ViT-B-16/openai where open_clip would download it, from a copy of open_clip's config."""
    from open_clip.pretrained import get_pretrained_cfg

    from zsseg.models.clip import load as clip

    cfg = get_pretrained_cfg("ViT-B-16", "openai")
    assert {"hf_hub": cfg["hf_hub"], "url": cfg["url"]} == clip._DEFAULT_CLIP_HOSTING
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    repo = tmp_path / "models--timm--vit_base_patch16_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc")
    (repo / "snapshots" / "abc").mkdir(parents=True)
    (repo / "snapshots" / "abc" / "open_clip_model.safetensors").write_bytes(b"x")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    hit = cached_weights("ViT-B-16/openai")
    assert hit is not None and hit.endswith("open_clip_model.safetensors")


def test_text_tower_runs_only_up_to_the_last_end_of_text(tiny_checkpoint, monkeypatch):
    """encode_texts cuts CLIP's 77-token context after the longest sentence's end-of-text token: the same embeddings
    as open_clip's full-length encode_text; a model the cut does not fit goes through encode_text unchanged."""
    from zsseg.models.clip import backend as clip

    backend = load_backend(f"clip:zsseg-tiny-clip/{tiny_checkpoint}")
    tokenizer = open_clip.get_tokenizer("zsseg-tiny-clip")
    texts = ["cat", "a photo of a potted plant in the scene, seen from far away at dusk.", " ".join(["sofa"] * 80)]
    with torch.no_grad():
        want = F.normalize(backend.model.encode_text(tokenizer(texts)), dim=-1)
    assert clip.plain_text_tower(backend.model) and clip.is_causal(backend.model.attn_mask)
    lengths = []
    forward = backend.model.transformer.forward
    monkeypatch.setattr(
        backend.model.transformer, "forward", lambda x, **kw: lengths.append(x.shape[1]) or forward(x, **kw)
    )
    for batch in (texts[:1], texts[:2], texts):
        torch.testing.assert_close(backend.encode_texts(batch), want[: len(batch)], rtol=1e-5, atol=1e-6)
    assert lengths == [
        3,
        int(tokenizer(texts[:2]).argmax(-1).max()) + 1,
        77,
    ]  # [start] cat [end]; longest; truncated to 77

    monkeypatch.setattr(backend.model, "text_pool_type", "first")  # not end-of-text pooling: no cut
    lengths.clear()
    backend.encode_texts(texts[:1])
    assert lengths == [77]


def test_is_causal():
    from zsseg.models.clip.backend import is_causal

    causal = torch.full((4, 4), float("-inf")).triu(1)
    assert is_causal(causal) and is_causal(causal.bfloat16())
    assert not is_causal(None) and not is_causal(torch.zeros(4, 4)) and not is_causal(causal.T)
    assert not is_causal(torch.full((4, 4), float("-inf")))  # nothing visible, not a causal mask
