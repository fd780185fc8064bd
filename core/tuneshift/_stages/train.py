"""Stage 6: train the target model with LoRA on the kept (prompt, response) pairs."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

from tuneshift._cache import fingerprint
from tuneshift._errors import RunError, UsageError
from tuneshift._hub import hub_id
from tuneshift._rundir import mark, move_into_place, owner, read_json, write_json
from tuneshift._stages.base import RunState
from tuneshift.kinds import Candidate, ModelSpec, Trainer


def run(run: RunState) -> dict[str, Any] | None:
    """Train unless there is no target, training is off, or the adapter on disk was trained on exactly
    this dataset (then its metrics, also when `tuneshift train` made it for a run with training off).

    A dataset that changed since (rounds extended or lowered) retrains: adapter, dataset.jsonl and
    report.json always describe the same pairs."""
    target = run.cfg.target
    done_marker = run.dir.state / "train.done.json"
    if target is None:
        return None
    pairs = [training_pair(c.prompt, c.response, {**c.extra, "fact": fact_of(c)} if run.augmented else c.extra)
             for c in run.candidates if c.kept]  # as dataset_row writes them
    pairs += [training_pair(a["prompt"], a["response"], a) for a in run.augmented]  # as dataset.jsonl lists them
    if done_marker.exists() and run.dir.adapter.is_dir():
        done = read_json(done_marker)
        if trained_on(done, pairs):
            return done
        if not target.train:  # ours, and no longer what the dataset says: gone, not silently stale
            warnings.warn(f"the adapter in {run.dir.adapter} was trained on another dataset ({done.get('pairs')} "
                          f"pairs, now {len(pairs)}); removed it: rerun `tuneshift train {run.dir.path}`",
                          stacklevel=2)
            shutil.rmtree(run.dir.adapter)
            done_marker.unlink()
    if not target.train:
        return None
    if not pairs:
        raise RunError("nothing was kept, so there is nothing to train the target on; lower the threshold")
    metrics = fit(run.impl["trainer"], run.target, pairs, run.dir.adapter, run.dir.state / "train")
    write_json(done_marker, metrics)
    return metrics


def trained_on(done: dict[str, Any], pairs: list[dict[str, Any]]) -> bool:
    """Whether a finished training (its done marker) used exactly these pairs."""
    if "pairs_fingerprint" not in done:  # written before fingerprints: the count is all there is
        return done.get("pairs") == len(pairs)
    return done["pairs_fingerprint"] == fingerprint(pairs)


def check_adapter_out(adapter: Path, run_dir: Path, models: list[str | None]) -> None:
    """Refuse, before anything runs, an adapter path that would overwrite what tuneshift does not own:
    the run directory, the current directory, an input model, or a folder it did not write."""
    adapter, run_dir = adapter.resolve(), run_dir.resolve()
    keep = {"the run directory": run_dir, "the current directory": Path.cwd().resolve(),
            **{f"the input model {m}": Path(m).resolve() for m in models if m}}
    for what, path in keep.items():
        if adapter == path or path.is_relative_to(adapter) or (what.startswith("the input") and
                                                                adapter.is_relative_to(path)):
            raise UsageError(f"adapter output {adapter}: would overwrite {what}; give a new directory")
    run_own = adapter == run_dir / "adapter"  # the run's own adapter, whoever trained it
    for path in (adapter, staging_of(adapter)):
        if path.exists() and not (run_own or owner(path) == "adapter"):
            raise UsageError(f"adapter output {path}: exists and was not written by tuneshift; "
                             "give a new directory")


def staging_of(adapter: Path) -> Path:
    return adapter.parent / f".{adapter.name}.partial"


def fact_of(c: Candidate) -> int:
    """The fact a kept pair teaches: what augmentation recorded (it and its agreeing phrasings), else the
    pair alone; no two pairs of one fact share a batch."""
    return c.extra["fact"] if c.extra.get("fact") is not None else c.id


def training_pair(prompt: str, response: str, extra: dict[str, Any]) -> dict[str, Any]:
    """A trainer's pair; `train_spans`, when a selector set them, limit the loss to those parts of the answer."""
    pair: dict[str, Any] = {"prompt": prompt, "response": response, "weight": 1.0}
    if extra.get("train_spans") is not None:
        pair["train_spans"] = extra["train_spans"]
    if extra.get("fact") is not None:  # an augmented phrasing: never in one batch with its fact's others
        pair["group"] = extra["fact"]
    return pair


def portable_base(adapter: Path, base: str) -> None:
    """Point the adapter's `base_model_name_or_path` at what a user can load elsewhere: the hub id when the
    target came from the hub, else the target as the config named it (not a conversion cache's folder)."""
    config_file = adapter / "adapter_config.json"
    adapter_config = read_json(config_file)
    if isinstance(adapter_config, dict):
        adapter_config["base_model_name_or_path"] = hub_id(base) or base
        write_json(config_file, adapter_config)


def fit(trainer: Trainer, model: ModelSpec, pairs: list[dict[str, Any]], adapter: Path, checkpoints: Path,
        main: bool = True) -> dict[str, Any]:
    """Train into a staging directory, then move it into place, so `adapter` is never half written.

    The adapter carries a marker (tuneshift's, trained on which pairs), so a later `--out` to it
    replaces only tuneshift's own output. Callers check the path first (`check_adapter_out`).
    Only the main process of a multi-process launch (`main`) touches the files; the others train."""
    staging, key = staging_of(adapter), fingerprint(pairs)
    if main:
        shutil.rmtree(staging, ignore_errors=True)  # a killed training's, checked to be ours
        staging.mkdir(parents=True)
        mark(staging, "adapter", pairs_fingerprint=key)
    metrics = trainer.train(model, pairs, str(staging), str(checkpoints))
    if not main:
        return metrics
    if not (staging / "adapter_config.json").is_file():
        raise RunError(f"trainer {trainer.name} wrote no adapter_config.json")
    portable_base(staging, model.base)
    move_into_place(staging, adapter)  # an existing adapter is ours (checked)
    return {"pairs": len(pairs), "pairs_fingerprint": key, **metrics}
