"""zsseg: open-vocabulary semantic segmentation with class-agnostic mask proposals and a vision-language model."""

from zsseg.errors import ZsSegError
from zsseg.io import read_image
from zsseg.models import available_models
from zsseg.pipeline import Segmenter, load
from zsseg.proposals.base import Proposals
from zsseg.result import Segmentation

__version__ = "0.1.0"
__all__ = ["Proposals", "Segmentation", "Segmenter", "ZsSegError", "available_models", "load", "read_image"]
