"""Reading a CLIP checkpoint tensor by tensor, each floating tensor cast to the model's precision as it is read,
so that a float32 checkpoint never sits in memory whole beside the model it becomes.

Two readers: :func:`read_safetensors` (plain reads at the header's offsets) and :func:`read_torch_cast` (torch's
zip format, memory-mapped, each tensor's pages given back to the kernel once cast). :func:`reading_cast` puts them
under open_clip's ``load_checkpoint``, which keeps converting the checkpoint formats.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any

import torch

_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
#: tensors kept in their own dtype when a checkpoint is read cast: ClipBackend reads the temperature before casting
_KEEP_DTYPE = ("logit_scale", "logit_bias")


def read_safetensors(path: str, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor] | None:
    """A ``.safetensors`` file read tensor by tensor with plain reads, floating tensors cast to ``dtype`` as they
    are read (except ``logit_scale``/``logit_bias``); None for a dtype this reader does not know or on a big-endian
    machine (the caller then reads it the usual way).

    ``safetensors.torch.load_file`` memory-maps the file and copies every tensor out: the touched pages of the
    map count as this process's memory next to the copies (a ViT-B/16 ``zsseg segment`` peaked at 1.72 GB RSS,
    against 1.49 GB from the same weights as a ``.pt``). Here the page cache holds the file, not this process, and
    only one float32 tensor lives at a time beside the cast ones.
    """
    import json
    import struct
    import sys

    if sys.byteorder != "little":
        return None
    state: dict[str, torch.Tensor] = {}
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        data = os.fstat(f.fileno()).st_size - 8 - size
        if size > 100_000_000 or data < 0:  # safetensors' own limit on the header
            raise ValueError(f"{path} is not a safetensors file (header of {size} bytes)")
        header = json.loads(f.read(size))
        header.pop("__metadata__", None)
        if any(info["dtype"] not in _SAFETENSORS_DTYPES for info in header.values()):
            return None
        for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            start, end = info["data_offsets"]
            if not 0 <= start <= end <= data:
                raise ValueError(f"{path} is truncated or corrupt: {name} lies outside the file")
            kind = _SAFETENSORS_DTYPES[info["dtype"]]
            if end == start:
                tensor = torch.empty(info["shape"], dtype=kind)
            else:
                f.seek(8 + size + start)
                buffer = bytearray(end - start)
                if f.readinto(buffer) != len(buffer):
                    raise ValueError(f"{path} is truncated: {name} ends past the end of the file")
                tensor = torch.frombuffer(buffer, dtype=kind).reshape(info["shape"])
            if dtype is not None and tensor.is_floating_point() and name not in _KEEP_DTYPE:
                tensor = tensor.to(dtype)
            state[name] = tensor
    return state


def _give_back_pages(tensor: torch.Tensor) -> None:
    """Drop the resident pages of a memory-mapped, never written ``tensor`` (Linux ``madvise(MADV_DONTNEED)``): a
    private file mapping then reads them from the file again if they are touched, so nothing changes but RSS."""
    import ctypes
    import mmap

    if tensor.numel() == 0:
        return
    page = mmap.PAGESIZE
    start = tensor.data_ptr() // page * page
    end = -(-(tensor.data_ptr() + tensor.numel() * tensor.element_size()) // page) * page
    _libc().madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # MADV_DONTNEED


@functools.cache
def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None)


def read_torch_cast(path: str, dtype: torch.dtype | None) -> dict[str, torch.Tensor] | None:
    """A torch checkpoint (zip format; a state dict, or ``{"state_dict": ...}``) memory-mapped, every floating
    tensor cast to ``dtype`` (except ``logit_scale``/``logit_bias``) and the others copied out, each tensor's pages
    of the map given back as soon as it is done. None where this does not apply (no cast asked, or float32, which
    the usual reader loads at the same cost; not Linux; a file torch cannot map, such as the legacy format or a
    TorchScript archive): the caller then reads it the usual way.

    ``torch.load`` reads a whole float32 checkpoint into memory before anything can be cast: ViT-B/16's 0.6 GB
    beside the 0.3 GB bf16 model it becomes. Mapped, a touched page counts as the process's memory until the map
    goes, so each tensor's pages are dropped once its cast copy exists.
    """
    import sys

    if dtype is None or dtype == torch.float32 or not sys.platform.startswith("linux"):
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception:
        return None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        return None
    out: dict[str, torch.Tensor] = {}
    for name in list(state):
        tensor = state.pop(name)
        cast = tensor.is_floating_point() and name not in _KEEP_DTYPE and tensor.dtype != dtype
        out[name] = tensor.to(dtype) if cast else tensor.clone()
        _give_back_pages(tensor)
    return out


_OPEN_CLIP_LOADER = threading.Lock()


@contextlib.contextmanager
def reading_cast(path: str, dtype: torch.dtype | None) -> Iterator[None]:
    """While open_clip loads ``path``, it reads it with :func:`read_safetensors` (``.safetensors``) or
    :func:`read_torch_cast` (anything else), casting to ``dtype`` as it reads; where those decline, as before.

    open_clip's ``load_checkpoint`` converts checkpoint formats around one call to ``factory.load_state_dict``;
    that name is swapped for the duration, under a lock, and hands every other path (or device) to the original.
    Nothing is swapped where open_clip has no such function.
    """
    import open_clip.factory as factory

    original = getattr(factory, "load_state_dict", None)
    if original is None:
        yield
        return
    read = read_safetensors if path.endswith(".safetensors") else read_torch_cast

    def load_state_dict(checkpoint_path: str, device: str = "cpu", weights_only: bool = True) -> dict:  # type: ignore[type-arg]
        state = read(path, dtype) if str(checkpoint_path) == path and str(device) == "cpu" else None
        if state is None:
            return original(checkpoint_path, device=device, weights_only=weights_only)  # type: ignore[no-any-return]
        if next(iter(state), "").startswith("module"):  # DataParallel's prefix, dropped as open_clip drops it
            state = {name[7:]: tensor for name, tensor in state.items()}
        return state

    with _OPEN_CLIP_LOADER:
        factory.load_state_dict = load_state_dict
        try:
            yield
        finally:
            factory.load_state_dict = original
