"""Full fine-tuning, declared: every parameter trains (the reference row per backbone). Implementation:
``methods/finetune/model.py``."""

from methods.registry import MethodEntry, declare

declare(MethodEntry("finetune", "methods.finetune.model:FineTune", "all parameters train"))
