"""zsseg: open-vocabulary semantic segmentation with class-agnostic mask proposals and a vision-language model."""
