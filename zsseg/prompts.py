"""Prompt templates and template-ensembled class embeddings.

Template sets (``--templates``):

- ``single``: ``"a photo of a {}."``
- ``vild``: the 14 templates of ViLD (Gu et al., ICLR 2022) as used by zsseg.baseline.
- ``imagenet``: CLIP's 80 ImageNet templates (Radford et al., 2021), read from open_clip's copy.

A class embedding is the re-normalised mean of its templates' L2-normalised text embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from zsseg.errors import ZsSegError

SINGLE_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)

VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


def imagenet_templates() -> tuple[str, ...]:
    """CLIP's 80 ImageNet prompt templates, from open_clip's ``zero_shot_metadata``."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)


TEMPLATE_SETS: tuple[str, ...] = ("single", "vild", "imagenet")

Templates = str | Sequence[str]
"""A template set's name (:data:`TEMPLATE_SETS`) or the templates themselves."""


def get_templates(name: Templates) -> tuple[str, ...]:
    """The templates of a named set, or the given templates as a tuple; each template has one ``{}`` for the
    class name.

    Raises:
        ZsSegError: an unknown set's name.
    """
    if not isinstance(name, str):
        return tuple(name)
    if name == "single":
        return SINGLE_TEMPLATES
    if name == "vild":
        return VILD_TEMPLATES
    if name == "imagenet":
        return imagenet_templates()
    raise ZsSegError(f"unknown template set {name!r}: use one of {', '.join(TEMPLATE_SETS)}")


def ensemble_class_embeddings(
    encode_texts: Callable[[list[str]], torch.Tensor],
    classes: Sequence[str],
    templates: Sequence[str],
    batch_size: int = 256,
) -> torch.Tensor:
    """Template-ensembled class embeddings.

    Args:
        encode_texts: maps N strings to a float tensor (N, D) (any norm).
        classes: K class names.
        templates: T format strings with one ``{}``.
        batch_size: sentences per call of ``encode_texts``.

    Returns:
        float32 tensor (K, D): for each class the mean over templates of the normalised sentence
        embeddings, normalised again.
    """
    sentences = [t.format(c) for c in classes for t in templates]
    chunks = [encode_texts(sentences[i : i + batch_size]) for i in range(0, len(sentences), batch_size)]
    emb = F.normalize(torch.cat(chunks).float(), dim=-1).view(len(classes), len(templates), -1)
    return F.normalize(emb.mean(dim=1), dim=-1)
