"""Pretraining (LLaMA-style configs, data pipeline, trainer, ReLoRA and other low-rank methods).

Empty for now: the pretraining issue fills it.
"""
