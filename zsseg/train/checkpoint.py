"""Writing the checkpoints of ``zsseg train`` (their format and reading: :mod:`zsseg.classify.checkpoint`).

Every file is written to a temporary name and moved into place (``os.replace``), so an interrupted save leaves
the previous checkpoint intact; ``NAME.optim.safetensors`` holds the optimizer state for ``--resume``.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path

import torch

from zsseg.classify.checkpoint import CheckpointMeta, json_path
from zsseg.io import AtomicWriter, signals_deferred


def optim_path(path: Path) -> Path:
    """``x.safetensors`` -> ``x.optim.safetensors``."""
    return Path(path).with_suffix(".optim.safetensors")


def sigint_deferred() -> AbstractContextManager[None]:
    """Delay Ctrl-C and SIGTERM until the block ends (in the main thread), so a save is never cut in half."""
    return signals_deferred()


def save_checkpoint(
    path: Path, tensors: dict[str, torch.Tensor], meta: CheckpointMeta, optimizer: torch.optim.Optimizer | None
) -> None:
    """Write the optimizer state, the tensors (with ``meta``) and the JSON, all together or none, Ctrl-C deferred."""
    from safetensors.torch import save_file

    path = Path(path)
    text = json.dumps(meta, indent=1)
    with sigint_deferred(), AtomicWriter() as writer:
        if optimizer is not None:
            state = {
                f"{i}.{k}": (v if torch.is_tensor(v) else torch.tensor(float(v))).detach().cpu().contiguous()
                for i, st in optimizer.state_dict()["state"].items()
                for k, v in st.items()
            }
            save_file(state, str(writer.reserve(optim_path(path))), metadata={"epoch": str(meta["epoch"])})
        cpu = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}  # best.* may alias
        save_file(cpu, str(writer.reserve(path)), metadata={"zsseg": text})
        writer.write_text(json_path(path), text + "\n")


def load_optimizer_state(path: Path, optimizer: torch.optim.Optimizer, epoch: int) -> bool:
    """Restore the optimizer state saved beside checkpoint ``path`` if it belongs to ``epoch``; True if done."""
    from safetensors import safe_open

    file = optim_path(path)
    if not file.is_file():
        return False
    with safe_open(str(file), framework="pt") as f:
        if (f.metadata() or {}).get("epoch") != str(epoch):
            return False
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key in f.keys():  # noqa: SIM118
            i, _, name = key.partition(".")
            state.setdefault(int(i), {})[name] = f.get_tensor(key)
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    return True
