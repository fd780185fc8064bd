"""Stage 6: train the target model with LoRA on the kept (prompt, response) pairs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from ..kinds import ModelSpec, Trainer
from ..rundir import read_json, write_json

if TYPE_CHECKING:
    from ..runner import Run


def run(run: "Run") -> dict[str, Any] | None:
    """Train unless there is no target, training is off, or a finished adapter is on disk (then its
    metrics, also when `tuneshift train` made it for a run with training off)."""
    target = run.cfg.target
    done_marker = run.dir.state / "train.done.json"
    if target is None:
        return None
    if done_marker.exists() and run.dir.adapter.is_dir():
        return read_json(done_marker)
    if not target.train:
        return None
    pairs = [training_pair(c.prompt, c.response, c.extra) for c in run.candidates if c.kept]
    if not pairs:
        raise RunError("nothing was kept, so there is nothing to train the target on; lower the threshold")
    model = ModelSpec(base=target.model, trust_remote_code=target.trust_remote_code)
    metrics = fit(run.impl["trainer"], model, pairs, run.dir.adapter, run.dir.state / "train")
    write_json(done_marker, metrics)
    return metrics


def training_pair(prompt: str, response: str, extra: dict[str, Any]) -> dict[str, Any]:
    """A trainer's pair; `train_spans`, when a selector set them, limit the loss to those parts of the answer."""
    pair: dict[str, Any] = {"prompt": prompt, "response": response, "weight": 1.0}
    if extra.get("train_spans") is not None:
        pair["train_spans"] = extra["train_spans"]
    return pair


def fit(trainer: Trainer, model: ModelSpec, pairs: list[dict[str, Any]], adapter: Path, checkpoints: Path,
        main: bool = True) -> dict[str, Any]:
    """Train into a staging directory, then move it into place, so `adapter` is never half written.

    Only the main process of a multi-process launch (`main`) touches the files; the others train."""
    staging = adapter.parent / f".{adapter.name}.partial"
    if main:
        shutil.rmtree(staging, ignore_errors=True)
    metrics = trainer.train(model, pairs, str(staging), str(checkpoints))
    if not main:
        return metrics
    if not (staging / "adapter_config.json").is_file():
        raise RunError(f"trainer {trainer.name} wrote no adapter_config.json")
    shutil.rmtree(adapter, ignore_errors=True)
    staging.rename(adapter)
    return {"pairs": len(pairs), **metrics}


def trained_target(run: "Run") -> ModelSpec | None:
    target = run.cfg.target
    if target is None or not Path(run.dir.adapter).is_dir():
        return None
    return ModelSpec(base=target.model, adapter=str(run.dir.adapter), trust_remote_code=target.trust_remote_code)
