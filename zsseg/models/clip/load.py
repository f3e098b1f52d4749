"""Loading CLIP through open_clip: ``clip:ARCH/PRETRAINED``, ``clip:ARCH/PATH``, ``clip:hf-hub:ORG/REPO``,
``clip:local-dir:FOLDER`` -> :class:`~zsseg.models.clip.backend.ClipBackend`.

Weights come from open_clip's usual cache (the Hugging Face hub cache, or ``~/.cache/clip`` for URL
downloads). Where they are missing and cannot be downloaded, loading fails with a :class:`ZsSegError`
naming the fix.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from zsseg.errors import ZsSegError
from zsseg.models.clip.backend import ClipBackend
from zsseg.models.clip.checkpoints import reading_cast
from zsseg.precision import resolve_precision

DEFAULT_CLIP = "ViT-B-16/openai"
# where open_clip hosts DEFAULT_CLIP's weights (its pretrained config; a test checks this copy against open_clip's),
# so that model "auto" looks for them without importing open_clip: ~1.2 s and ~150 MB (torchvision, timm,
# transformers) that a run falling back to ConSE does not need
_DEFAULT_CLIP_HOSTING = {
    "hf_hub": "timm/vit_base_patch16_clip_224.openai/",
    "url": "https://openaipublic.azureedge.net/clip/models/"
    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
}


def download_hint(spec: str) -> str:
    """How to get the weights of ``spec`` onto a machine without them, in one clause."""
    arch, pretrained = split_spec(spec)
    call = f"'{arch}'" if pretrained is None else f"'{arch}', pretrained='{pretrained}'"
    return (
        f'download them once on a machine with internet (python -c "import open_clip; '
        f'open_clip.create_model({call})") and copy '
        f"the Hugging Face cache (~/.cache/huggingface), or pass a local file as --model clip:ARCH/PATH, "
        f"or use the offline backend --model conse:efficientnet-lite0"
    )


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"ViT-B-16/openai"`` -> ``("ViT-B-16", "openai")``; ``"hf-hub:org/repo"``, ``"local-dir:F"`` -> (spec, None).

    Everything after the first ``/`` is the pretrained tag or a file path (``ViT-B-16//abs/ckpt.pt``).
    """
    if spec.startswith(("hf-hub:", "local-dir:")):
        return spec, None
    arch, sep, pretrained = spec.partition("/")
    if not arch or not sep or not pretrained:
        raise ZsSegError(
            f"CLIP model {spec!r} must be ARCH/PRETRAINED (e.g. clip:{DEFAULT_CLIP}), ARCH/PATH to a checkpoint, "
            "or hf-hub:ORG/REPO"
        )
    return arch, pretrained


def cached_weights(spec: str) -> str | None:
    """Local path of the weights for ``ARCH/PRETRAINED`` if they need no download, else None.

    Looks in open_clip's caches without touching the network: the Hugging Face hub cache for tags
    hosted there, ``~/.cache/clip`` for URL tags, and the file itself for a path.
    """
    from huggingface_hub import try_to_load_from_cache

    arch, pretrained = split_spec(spec)
    if arch.startswith("local-dir:"):
        return _local_dir_checkpoint(Path(arch.split(":", 1)[1]))
    if pretrained is None:
        repo = arch.split(":", 1)[1]
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            hit = try_to_load_from_cache(repo, filename)
            if isinstance(hit, str):
                return hit
        return None
    if os.path.isfile(pretrained):
        return pretrained
    if (arch, pretrained) == split_spec(DEFAULT_CLIP):
        cfg = _DEFAULT_CLIP_HOSTING
    else:
        from open_clip.pretrained import get_pretrained_cfg

        cfg = get_pretrained_cfg(arch, pretrained)
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        filename = filename or "open_clip_pytorch_model.bin"
        candidates = [filename]
        if filename.endswith((".bin", ".pth")) and filename != "pytorch_model.bin":
            candidates.insert(0, filename[:-4] + ".safetensors")
        if filename == "open_clip_pytorch_model.bin":
            candidates.insert(0, "open_clip_model.safetensors")
        for name in candidates:
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str):
                return hit
    if cfg.get("url"):
        path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


#: the checkpoint names open_clip looks for in a ``local-dir:`` folder, in its order of preference
_LOCAL_DIR_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.pth",
    "model.pth",
)


def _local_dir_checkpoint(folder: Path) -> str | None:
    """The checkpoint open_clip's ``local-dir:`` loads from ``folder``: the first of the usual names, else the
    first ``.safetensors``, ``.bin`` or ``.pth`` file by name (safetensors first), as open_clip picks it."""
    for name in _LOCAL_DIR_NAMES:
        if (folder / name).is_file():
            return str(folder / name)
    found = sorted(p for suffix in ("safetensors", "bin", "pth") for p in folder.glob(f"*.{suffix}") if p.is_file())
    found.sort(key=lambda p: p.suffix != ".safetensors")
    return str(found[0]) if found else None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a download could start: not in offline mode, and the hub's host name resolves and connects."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def trained_with_quick_gelu(spec: str) -> bool:
    """Whether ``ARCH/TAG`` names weights trained with QuickGELU that ARCH's config builds with ``nn.GELU``.

    open_clip 3 builds ``ViT-B-16`` with ``nn.GELU`` even for the ``openai`` tag, whose weights were trained with
    QuickGELU (``x * sigmoid(1.702 x)``), and only warns (open_clip issue #771); every OpenAI CLIP would then run
    the wrong activation. The tag's own config says which it was trained with. A checkpoint *file* carries no
    such record: name the ``-quickgelu`` architecture for those (``clip:ViT-B-16-quickgelu/PATH``).
    """
    arch, pretrained = split_spec(spec)
    if pretrained is None or os.path.isfile(pretrained):
        return False
    from open_clip.pretrained import get_pretrained_cfg

    return bool(get_pretrained_cfg(arch, pretrained).get("quick_gelu", False))


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


def _create_assigned(spec: str, dtype: torch.dtype | None = None) -> torch.nn.Module | None:
    """open_clip's model for ``spec`` on the CPU, its parameters the checkpoint's own tensors; None where that
    does not apply.

    ``open_clip.create_model`` initialises every weight at random (0.8 s for ViT-B/16) and then copies the
    checkpoint into them: two float32 copies of the model at once, +0.6 GB of peak memory for ViT-B/16. Here the
    model is built on the meta device (no memory, no initialisation), and open_clip's own loader, which converts
    the checkpoint formats, loads into it with ``load_state_dict(assign=True)``. The one tensor a checkpoint does
    not hold, the text tower's causal ``attn_mask`` buffer, is rebuilt. The checkpoint is read tensor by tensor
    and cast to ``dtype`` on the way where its format allows (:mod:`zsseg.models.clip.checkpoints`). None
    (the caller then takes open_clip's usual path): no local checkpoint, a big_vision ``.npz``, a model that cannot
    be built on meta (some timm towers), or any other tensor left unset.
    """
    import open_clip

    arch, pretrained = split_spec(spec)
    drop = _DropRandomInitWarning()
    logging.getLogger().addFilter(drop)
    try:
        with torch.device("meta"):  # resolves the tag (downloading once if needed) and builds nothing real
            model = open_clip.create_model(
                arch,
                pretrained=pretrained,
                load_weights=False,
                device="meta",
                force_quick_gelu=trained_with_quick_gelu(spec),
            )
    except Exception:
        return None
    finally:
        logging.getLogger().removeFilter(drop)
    path = cached_weights(spec)
    if path is None or path.endswith((".npz", ".npy")):
        return None
    model.load_state_dict = functools.partial(model.load_state_dict, assign=True)  # type: ignore[method-assign]
    try:
        with reading_cast(path, dtype):
            open_clip.load_checkpoint(model, path, strict=True)
    finally:
        del model.load_state_dict
    for module in model.modules():
        mask = module._buffers.get("attn_mask")
        if mask is not None and mask.is_meta and mask.dim() == 2 and mask.shape[0] == mask.shape[1]:
            module._buffers["attn_mask"] = torch.full(mask.shape, float("-inf")).triu_(1)
        tensors = [*module._parameters.values(), *module._buffers.values(), *vars(module).values()]
        if any(isinstance(t, torch.Tensor) and t.is_meta for t in tensors):
            return None
    return model


def _load_failure(spec: str, path: str, exc: Exception) -> str:
    """One line for a checkpoint that is there but does not load: ``exc`` is torch's, safetensors' or pickle's
    error, whose first specific line says what is wrong (torch's state-dict errors span many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    arch = split_spec(spec)[0]
    if lines and lines[0].startswith("Error(s) in loading state_dict"):
        detail = lines[1] if len(lines) > 1 else lines[0]
        return (
            f"CLIP checkpoint {path} does not fit architecture {arch} ({detail[:200]}): name the architecture it "
            f"was saved from, clip:ARCH/{path}, with ARCH from open_clip.list_models()"
        )
    detail = lines[0][:200] if lines else type(exc).__name__
    return (
        f"could not read CLIP checkpoint {path} ({type(exc).__name__}: {detail}): pass a checkpoint open_clip "
        "saved or downloaded (.pt/.bin state dict, .safetensors), or download it again"
    )


def load_clip(spec: str = DEFAULT_CLIP, device: str | torch.device = "cpu", precision: str = "fp32") -> ClipBackend:
    """Build a :class:`ClipBackend` from ``ARCH/PRETRAINED``, ``ARCH/PATH``, ``hf-hub:ORG/REPO`` or
    ``local-dir:FOLDER``, cast to ``precision`` (see :class:`ClipBackend`).

    Raises:
        ZsSegError: unknown architecture or tag, or weights that are neither cached nor downloadable.
    """
    import open_clip
    from open_clip.pretrained import list_pretrained_tags_by_model

    arch, pretrained = split_spec(spec)
    if arch.startswith("local-dir:"):
        folder = Path(arch.split(":", 1)[1])
        if not (folder / "open_clip_config.json").is_file() or _local_dir_checkpoint(folder) is None:
            raise ZsSegError(
                f"CLIP folder {folder} needs open_clip_config.json and a checkpoint "
                "(.safetensors, .bin or .pth): pass a folder open_clip or the Hugging Face hub "
                "saved, or a checkpoint file as clip:ARCH/PATH"
            )
    if pretrained is not None:
        if arch not in open_clip.list_models():
            raise ZsSegError(
                f"unknown CLIP architecture {arch!r}: use a name from open_clip.list_models(), e.g. clip:{DEFAULT_CLIP}"
            )
        is_file = os.path.isfile(pretrained)
        if not is_file and pretrained not in list_pretrained_tags_by_model(arch):
            if "/" in pretrained or pretrained.endswith((".pt", ".bin", ".pth", ".safetensors")):
                raise ZsSegError(f"CLIP checkpoint file not found: {pretrained}: pass an existing file path")
            tags = ", ".join(list_pretrained_tags_by_model(arch)) or "none"
            raise ZsSegError(f"unknown pretrained tag {pretrained!r} for {arch}: known tags are {tags}")
    if cached_weights(spec) is None and not _hub_reachable():
        raise ZsSegError(f"CLIP weights for {spec} are not cached and the hub cannot be reached: {download_hint(spec)}")
    try:
        model = _create_assigned(spec, resolve_precision(precision, torch.device(device)))
        if model is None:
            model = open_clip.create_model(
                arch, pretrained=pretrained, device=device, force_quick_gelu=trained_with_quick_gelu(spec)
            )
        tokenizer = open_clip.get_tokenizer(arch)
    except ZsSegError:
        raise
    except Exception as exc:  # open_clip raises RuntimeError/FileNotFoundError/OSError on download failure
        path = cached_weights(spec)
        if path is None:
            raise ZsSegError(
                f"CLIP weights for {spec} are not cached and could not be downloaded: {download_hint(spec)}"
            ) from exc
        raise ZsSegError(_load_failure(spec, path, exc)) from exc
    return ClipBackend(model, tokenizer, name=f"clip:{spec}", device=device, precision=precision)
