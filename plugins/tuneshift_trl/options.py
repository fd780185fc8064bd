"""The trl-sft trainer's options: peft-lora's, with its defaults (one [trainer] section serves both), and TRL's own.

Declared here rather than inherited from peft-lora's: listing the plugins
imports this module, and tuneshift_hf.shared imports torch.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tuneshift.api import Options

TRACKERS = ("tensorboard", "wandb", "mlflow", "comet_ml", "neptune", "clearml", "dvclive", "trackio", "swanlab",
            "codecarbon")
"""report_to names transformers knows; each is also the module it needs and what to pip install."""


class SftOptions(Options):
    rank: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    learning_rate: float = Field(5e-4, gt=0)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(8, ge=1, description="rows per pass of one process (per_device_train_batch_size)")
    grad_accumulation: int = Field(1, ge=1)
    max_length: int = Field(256, ge=8)
    seed: int = Field(0, ge=0, lt=2**32, description="seeds the LoRA weights, the data order and dropout")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of the optimiser steps warming the rate up")
    schedule: Literal["constant", "linear", "cosine"] = Field("constant", description="the rate after the warmup")
    max_grad_norm: float | None = Field(None, gt=0, description="clip the gradient norm to this (none: no clipping)")
    held_out: float = Field(0.0, ge=0, lt=0.5, description="share of the pairs held out to choose the epoch: stop "
                                                            "when their loss stops falling (epochs: the most)")
    held_out_by: Literal["fact", "phrasing"] = Field("fact", description="hold out whole facts (all their "
                                                     "phrasings), or one phrasing of facts trained on otherwise")
    precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: bfloat16 on CUDA and on CPUs with bfloat16 units, else float32")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass "
                                                            "(less memory, about 20% slower)")
    packing: bool = Field(False, description="pack rows into max_length blocks (TRL's best-fit decreasing)")
    report_to: list[str] = Field(["none"], description="experiment trackers for SFTConfig.report_to")
    logging_dir: str | None = Field(None, description="where the tensorboard tracker writes "
                                                      "(default: the checkpoint directory's runs/)")

    def resolved(self) -> str:
        """`auto` made concrete for this machine, as peft-lora makes it."""
        from tuneshift_hf.shared import resolve_precision

        return resolve_precision(self.precision)

    @field_validator("target_modules")
    @classmethod
    def _no_lm_head(cls, value: list[str] | str) -> list[str] | str:
        if "lm_head" in ([value] if isinstance(value, str) else value):
            raise ValueError("lm_head must not be a LoRA target (vLLM drops such adapters from logprobs)")
        return value

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name != "none" and name not in TRACKERS]
        if unknown:
            raise ValueError(f"unknown tracker {unknown[0]!r}; expected none or some of {', '.join(TRACKERS)}")
        if not value or ("none" in value and len(value) > 1):
            raise ValueError('expected ["none"] alone, or one or more trackers')
        return value
