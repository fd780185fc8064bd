"""`tuneshift train RUN_DIR`: train the target on a run's dataset, in one process or in several.

Generation and scoring run in one process; training is what gains from several
GPUs. So the multi-GPU recipe is two steps: `tuneshift run CONFIG --out DIR
--set target.train=false`, then `accelerate launch -m tuneshift train DIR`,
which starts this command in every process (the trainer splits the batches).

It reads what the run left: config.toml (the resolved config: [target],
[trainer]) and dataset.jsonl, and uses the pipeline's checkpoint directory
(state/train) and done marker, so a training the pipeline started resumes here
and a rerun of the pipeline reports (and evaluates) the adapter made here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import config
from .errors import UsageError
from .kinds import Context, ModelSpec
from .plugins import Registry
from .rundir import RunDir, read_jsonl, write_json
from .stages.train import check_adapter_out, fit, training_pair

RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
"""What torchrun / accelerate launch (and MPI launchers) set in each process."""


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def world_size() -> int:
    return _first_int(WORLD_VARIABLES, 1)


def is_main_process() -> bool:
    return _first_int(RANK_VARIABLES, 0) == 0


def refuse_multi_process(command: str) -> None:
    """The pipeline runs in one process: N copies would race on one run directory."""
    if world_size() > 1:
        raise UsageError(f"tuneshift {command} runs in one process, not {world_size()}; to train on several "
                         "GPUs: tuneshift run CONFIG --out DIR --set target.train=false, "
                         "then accelerate launch -m tuneshift train DIR")


def load_pairs(path: Path) -> list[dict[str, Any]]:
    """dataset.jsonl as the trainer's pairs, in the order the pipeline's train stage uses."""
    pairs = []
    for number, row in enumerate(read_jsonl(path, "dataset"), 1):
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("response"), str)):
            raise UsageError(f"dataset {path}, line {number}: expected an object with string 'prompt' and 'response'")
        pairs.append(training_pair(row["prompt"], row["response"], row))
    if not pairs:
        raise UsageError(f"dataset {path}: empty, so there is nothing to train the target on")
    return pairs


def train_run_dir(registry: Registry, selected: list[str], run_dir: Path, out: Path | None,
                  overrides: list[str]) -> dict[str, Any]:
    """Train the run's target on its dataset into `out` (default RUN_DIR/adapter); returns the metrics."""
    from .runner import instantiate

    run_dir, out = run_dir.resolve(), out.resolve() if out else None
    snapshot = run_dir / "config.toml"
    if not snapshot.is_file():
        raise UsageError(f"{run_dir}: no config.toml; expected the directory of a tuneshift run")
    raw = config.load(snapshot, overrides)
    cfg = config.validate_core(raw)
    if cfg.target is None:
        raise UsageError(f"{snapshot}: no [target] section, so there is no model to train")
    if not Path(cfg.target.model).exists():
        raise UsageError(f"config: target.model = {cfg.target.model}: no such file or directory")
    pairs = load_pairs(run_dir / "dataset.jsonl")
    t = cfg.teacher
    target = ModelSpec(base=cfg.target.model, trust_remote_code=cfg.target.trust_remote_code)
    context = Context(teacher=ModelSpec(base=t.base, adapter=t.adapter, finetuned=t.finetuned,
                                        trust_remote_code=t.trust_remote_code),
                      target=target, seed=cfg.run.seed, work_dir=str(run_dir / "state" / "plugins"))
    directory = RunDir(run_dir)
    adapter = out or directory.adapter
    check_adapter_out(adapter, run_dir, [t.base, t.adapter, t.finetuned, cfg.target.model])
    trainer = instantiate(registry, raw, "trainer", selected, context)
    main = is_main_process()
    if main:
        directory.open()  # the lock: no `tuneshift run` on this directory meanwhile
    try:
        metrics = fit(trainer, target, pairs, adapter, directory.state / "train", main)
        if main and adapter.resolve() == directory.adapter.resolve():
            write_json(directory.state / "train.done.json", metrics)
    finally:
        trainer.close()
        directory.close()
    return metrics
