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

from pathlib import Path
from typing import Any

import click

from tuneshift import _config as config
from tuneshift._card import write_card
from tuneshift._commands.state import State, output_path
from tuneshift._errors import UsageError
from tuneshift._inputs import pair_rows
from tuneshift._models import Models, build_context
from tuneshift._processes import is_main_process
from tuneshift._rundir import RunDir, read_json, write_json
from tuneshift._stages.train import check_adapter_out, fit, training_pair


@click.command("train")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("--out", "adapter_dir", type=click.Path(), default=None,
              help="Adapter directory to write (default: RUN_DIR/adapter); never a directory tuneshift did not make.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.pass_obj
def command(state: State, run_dir: Path, adapter_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Train the target on RUN_DIR's dataset.jsonl; under `accelerate launch`, data-parallel on every device."""
    adapter_dir = output_path(adapter_dir, "--out")
    metrics = train_run_dir(state, run_dir, adapter_dir, list(overrides))
    if is_main_process():
        click.echo(f"trained the target on {metrics['pairs']} pairs; adapter in {adapter_dir or run_dir / 'adapter'}",
                   err=True)


def load_pairs(path: Path) -> list[dict[str, Any]]:
    """dataset.jsonl as the trainer's pairs, in the order the pipeline's train stage uses."""
    pairs = [training_pair(row["prompt"], row["response"], row) for _, row in pair_rows(path, "dataset")]
    if not pairs:
        raise UsageError(f"dataset {path}: empty, so there is nothing to train the target on")
    return pairs


def train_run_dir(state: State, run_dir: Path, out: Path | None, overrides: list[str]) -> dict[str, Any]:
    """Train the run's target on its dataset into `out` (default RUN_DIR/adapter); returns the metrics."""
    from tuneshift._runner import instantiate

    run_dir, out = run_dir.resolve(), out.resolve() if out else None
    snapshot = run_dir / "config.toml"
    if not snapshot.is_file():
        raise UsageError(f"{run_dir}: no config.toml; expected the directory of a tuneshift run")
    raw = config.load(snapshot, overrides)
    cfg = config.validate_core(raw)
    if cfg.target is None:
        raise UsageError(f"{snapshot}: no [target] section, so there is no model to train")
    models = Models.of(cfg)  # a hub id: its snapshot folder
    if not Path(models.target.base).exists():
        raise UsageError(f"config: target.model = {cfg.target.model}: no such file or directory")
    pairs = load_pairs(run_dir / "dataset.jsonl")
    context = build_context(state, models, cfg.run.seed, run_dir / "state" / "plugins")
    directory = RunDir(run_dir)
    adapter = out or directory.adapter
    check_adapter_out(adapter, run_dir, list(models.paths().values()))
    trainer = instantiate(state, raw, "trainer", context)
    main = is_main_process()
    if main:
        directory.open()  # the lock: no `tuneshift run` on this directory meanwhile
    try:
        metrics = fit(trainer, models.target, pairs, adapter, directory.state / "train", main)
        if main and adapter.resolve() == directory.adapter.resolve():
            write_json(directory.state / "train.done.json", metrics)
        if main:  # the card: the run's numbers so far, this training's metrics (no evaluation of it yet)
            report = read_json(directory.report) if directory.report.is_file() else {}
            write_card(adapter, models.teacher, {**report, "train": metrics, "eval": None, "verification": None})
    finally:
        trainer.close()
        directory.close()
    return metrics
