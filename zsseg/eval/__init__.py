"""Evaluation: streaming semantic segmentation metrics (mIoU, fwIoU, mAcc, pAcc, hIoU), dataset runner."""

from zsseg.eval.runner import evaluate_dataset, save_label_png
from zsseg.eval.semseg import SemSegEvaluator, format_markdown

__all__ = ["SemSegEvaluator", "evaluate_dataset", "format_markdown", "save_label_png"]
