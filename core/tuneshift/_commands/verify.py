"""`tuneshift verify RUN_DIR`, and `verify_adapter` for any adapter of a run's target.

Both reopen the run from what it left (config.toml, candidates.jsonl) with the
same implementations and cache, so the held-out prompts and the teacher's
answers are those of the pipeline's verify stage, and nothing is recomputed.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import click

from tuneshift._commands.state import State
from tuneshift._errors import UsageError
from tuneshift._rundir import read_json, read_jsonl, write_json
from tuneshift.kinds import Candidate


@click.command("verify")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (verify.size).")
@click.pass_obj
def command(state: State, run_dir: Path, overrides: tuple[str, ...]) -> None:
    """Measure, without the private data, how much of the teacher RUN_DIR's trained target learnt."""
    from tuneshift._processes import refuse_multi_process

    refuse_multi_process("verify")
    overall = verify_run_dir(state, run_dir, list(overrides))["overall"]
    if not overall["n"]:
        click.echo(f"no held-out prompt could be drawn and answered; see {run_dir / 'verification.md'}", err=True)
        return
    click.echo(f"agreement with the teacher {overall['agreement']:.3f} (untrained {overall['agreement_before']:.3f}), "
               f"training lowered the NLL of the teacher's answer on {overall['beats_untrained']:.0%} of "
               f"{overall['n']} held-out prompts; per region in {run_dir / 'verification.md'}", err=True)


@contextmanager
def reopened(state: State, run_dir: Path, overrides: Sequence[str] = ()) -> Iterator[Any]:
    """The finished run in `run_dir` as a `Run`, its candidates loaded, its directory locked."""
    from tuneshift._runner import Run

    run_dir = Path(run_dir).resolve()
    snapshot = run_dir / "config.toml"
    if not snapshot.is_file():
        raise UsageError(f"{run_dir}: no config.toml; expected the directory of a tuneshift run")
    if not (run_dir / "candidates.jsonl").is_file():
        raise UsageError(f"{run_dir}: no candidates.jsonl; the run has not finished a round (rerun tuneshift run)")
    run = Run(snapshot, run_dir, list(overrides), state)
    if run.cfg.target is None:
        raise UsageError(f"{snapshot}: no [target] section, so there is no target to verify")
    run.open()
    try:
        run.candidates = [Candidate(**row) for row in read_jsonl(run.dir.candidates, "candidates")]
        if run.dir.dataset.is_file():  # the augmentation's pairs were trained on too: never held out
            run.augmented = [{k: row[k] for k in ("prompt", "response", "fact", "origin")}
                             for row in read_jsonl(run.dir.dataset, "dataset") if row.get("origin") == "augment"]
        run.current_stage = "verify"
        yield run
    finally:
        run.close()


def verify_run_dir(state: State, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Verify the run's trained target; writes verification.{jsonl,md,png} and report.json's section."""
    from tuneshift._stages.verify import verify, write_outputs

    with reopened(state, run_dir, overrides) as run:
        model = run.trained_target()
        if model is None:
            raise UsageError(f"{run_dir}: no adapter/; train the target first (tuneshift run with target.train, "
                             "or tuneshift train RUN_DIR)")
        section, rows = verify(run, model)
        write_outputs(run.dir.path, section, rows)
        if run.dir.report.exists():
            write_json(run.dir.report, {**read_json(run.dir.report), "verification": section})
    return section


def verify_adapter(state: State, run_dir: Path, adapter: str | Path | None) -> dict[str, Any]:
    """Verify the run's target with another `adapter` (None: the untrained target) on the run's held-out
    prompts, against the same teacher answers: compares targets trained on different data."""
    from tuneshift._stages.verify import verify

    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise UsageError(f"adapter {adapter}: no adapter_config.json (not a PEFT adapter directory)")
    with reopened(state, run_dir) as run:
        section, _ = verify(run, run.models.trained(adapter) if adapter else run.target)
    return section
