"""Stage 6: train the target model with LoRA on the kept (prompt, response) pairs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from ..kinds import ModelSpec
from ..rundir import read_json, write_json

if TYPE_CHECKING:
    from ..runner import Run


def run(run: "Run") -> dict[str, Any] | None:
    """Train unless there is no target, training is off, or a finished adapter is on disk."""
    target = run.cfg.target
    done_marker = run.dir.state / "train.done.json"
    if target is None or not target.train:
        return None
    if done_marker.exists() and run.dir.adapter.is_dir():
        return read_json(done_marker)
    pairs = [{"prompt": c.prompt, "response": c.response, "weight": 1.0} for c in run.candidates if c.kept]
    if not pairs:
        raise RunError("nothing was kept, so there is nothing to train the target on; lower the threshold")
    staging = run.dir.path / ".adapter.partial"
    shutil.rmtree(staging, ignore_errors=True)
    model = ModelSpec(base=target.model, trust_remote_code=target.trust_remote_code)
    metrics = run.impl["trainer"].train(model, pairs, str(staging), str(run.dir.state / "train"))
    if not (staging / "adapter_config.json").is_file():
        raise RunError(f"trainer {run.impl['trainer'].name} wrote no adapter_config.json")
    shutil.rmtree(run.dir.adapter, ignore_errors=True)
    staging.rename(run.dir.adapter)
    metrics = {"pairs": len(pairs), **metrics}
    write_json(done_marker, metrics)
    return metrics


def trained_target(run: "Run") -> ModelSpec | None:
    target = run.cfg.target
    if target is None or not Path(run.dir.adapter).is_dir():
        return None
    return ModelSpec(base=target.model, adapter=str(run.dir.adapter), trust_remote_code=target.trust_remote_code)
