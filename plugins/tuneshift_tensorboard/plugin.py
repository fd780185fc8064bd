"""Writes `on_metrics` into RUN_DIR/tensorboard/ when the tensorboard package is installed; `tensorboard
--logdir RUN_DIR/tensorboard` shows them. Without the package it does nothing; `--no-plugin tensorboard`
turns it off. Each scalar is named `<stage>/<metric>` (train/loss, train/learning_rate, ...)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from tuneshift.api import hookimpl

_run: dict[str, Any] = {}


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


@hookimpl
def on_run_start(out_dir, config):
    _run.clear()
    if available():
        _run["folder"] = Path(out_dir) / "tensorboard"


@hookimpl
def on_metrics(stage, step, metrics):
    if "folder" not in _run:
        return
    if "writer" not in _run:  # on the first step only: a run that trains nothing writes nothing
        from torch.utils.tensorboard import SummaryWriter

        _run["writer"] = SummaryWriter(log_dir=str(_run["folder"]))
    for name, value in metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            _run["writer"].add_scalar(f"{stage}/{name}", value, global_step=step)


@hookimpl
def on_run_end(out_dir, status, error):
    writer = _run.pop("writer", None)
    if writer is not None:
        writer.close()
    _run.clear()
