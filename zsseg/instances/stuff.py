"""Which classes are *stuff* (amorphous regions: one segment per class) and which are *things* (countable instances).

The user decides (``stuff=[...]``, ``--stuff "sky, wall, road"``); without that, :data:`STUFF_NAMES` does. It holds
the stuff categories of COCO-Stuff / COCO panoptic, ADE20K's panoptic split and Cityscapes, in plain words, minus
the names one of them counts as a thing (ADE20K's table, door, curtain, stairs and window are things), so a count
of objects is never silently lost. Matching ignores case, surrounding spaces and a plural ``s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zsseg.errors import ZsSegError

STUFF_NAMES: frozenset[str] = frozenset(
    {
        # sky, weather and water
        "sky", "cloud", "clouds", "fog", "water", "sea", "ocean", "river", "lake", "pond", "waterfall", "falls",
        "snow", "ice", "waterdrops",
        # ground
        "ground", "earth", "land", "soil", "dirt", "mud", "sand", "gravel", "grass", "lawn", "field", "terrain",
        "playingfield", "road", "street", "sidewalk", "pavement", "path", "runway", "dirt track", "railroad",
        "railway", "track", "parking", "platform", "floor", "wood floor", "tile floor", "stone floor",
        "marble floor", "carpet", "rug", "mat",
        # landscape and vegetation
        "mountain", "hill", "rock", "stone", "cliff", "vegetation", "tree", "forest", "bush", "shrub", "hedge",
        "plant", "leaves", "moss", "straw", "branch",
        # built structure
        "wall", "brick wall", "concrete wall", "stone wall", "tile wall", "wood wall", "panel wall", "ceiling",
        "tile ceiling", "roof", "building", "skyscraper", "house", "tower", "bridge", "fence", "railing",
        "guard rail", "pier", "tent", "canopy", "grandstand", "stage", "pool", "swimming pool", "structural",
        # materials
        "wood", "metal", "plastic", "paper", "cardboard", "cloth", "textile", "blanket", "solid",
        # catch-alls
        "background", "other", "void",
    }
)  # fmt: skip


def normalise(name: str) -> str:
    """A class name as :data:`STUFF_NAMES` is matched: lower case, single spaces."""
    return " ".join(name.lower().split())


def is_builtin_stuff(name: str) -> bool:
    """Whether the built-in list calls ``name`` stuff (plural ``s`` / ``es`` tolerated)."""
    n = normalise(name)
    return (
        n in STUFF_NAMES or (n.endswith("s") and n[:-1] in STUFF_NAMES) or (n.endswith("es") and n[:-2] in STUFF_NAMES)
    )


@dataclass(frozen=True)
class StuffSplit:
    """Which of a vocabulary's classes are stuff.

    Attributes:
        stuff: bool (K,) as a tuple: ``stuff[k]`` for class ``k``.
        source: ``"user"`` (given) or ``"builtin"`` (:data:`STUFF_NAMES`).
    """

    stuff: tuple[bool, ...]
    source: str

    def names(self, classes: Sequence[str]) -> list[str]:
        """The stuff classes' names, in vocabulary order."""
        return [c for c, s in zip(classes, self.stuff, strict=True) if s]


def parse_stuff(stuff: Sequence[str] | str | None) -> list[str] | None:
    """``--stuff "sky, wall"`` or a list as a list of names; None stays None (the built-in list decides)."""
    if stuff is None:
        return None
    names = stuff.split(",") if isinstance(stuff, str) else list(stuff)
    return [n.strip() for n in names if n.strip()]


def resolve_stuff(classes: Sequence[str], stuff: Sequence[str] | str | None = None) -> StuffSplit:
    """Split ``classes`` into stuff and things.

    Args:
        classes: the vocabulary.
        stuff: the stuff classes' names (each must be in ``classes``; an empty list makes every class a thing),
            or None for the built-in list.

    Raises:
        ZsSegError: a name in ``stuff`` that is not in the vocabulary.
    """
    names = parse_stuff(stuff)
    if names is None:
        return StuffSplit(tuple(is_builtin_stuff(c) for c in classes), "builtin")
    vocab = {normalise(c): i for i, c in enumerate(classes)}
    unknown = [n for n in names if normalise(n) not in vocab]
    if unknown:
        raise ZsSegError(
            f"--stuff names {', '.join(repr(n) for n in unknown)}, not in the vocabulary "
            f"({', '.join(classes)}): name stuff classes among --classes"
        )
    chosen = {vocab[normalise(n)] for n in names}
    return StuffSplit(tuple(i in chosen for i in range(len(classes))), "user")
