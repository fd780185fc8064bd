"""`tuneshift verify RUN_DIR`, and `verify_adapter` for any adapter of a run's target.

Both reopen the run from what it left (config.toml, candidates.jsonl) with the
same implementations and cache, so the held-out prompts and the teacher's
answers are those of the pipeline's verify stage, and nothing is recomputed.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import UsageError
from .kinds import Candidate, ModelSpec
from .plugins import Registry
from .rundir import read_json, read_jsonl, write_json


@contextmanager
def reopened(registry: Registry, run_dir: Path, selected: Sequence[str] = (),
             overrides: Sequence[str] = ()) -> Iterator[Any]:
    """The finished run in `run_dir` as a `Run`, its candidates loaded, its directory locked."""
    from .runner import Run

    run_dir = Path(run_dir).resolve()
    snapshot = run_dir / "config.toml"
    if not snapshot.is_file():
        raise UsageError(f"{run_dir}: no config.toml; expected the directory of a tuneshift run")
    if not (run_dir / "candidates.jsonl").is_file():
        raise UsageError(f"{run_dir}: no candidates.jsonl; the run has not finished a round (rerun tuneshift run)")
    run = Run(snapshot, run_dir, list(overrides), registry, list(selected))
    if run.cfg.target is None:
        raise UsageError(f"{snapshot}: no [target] section, so there is no target to verify")
    run.open()
    try:
        run.candidates = [Candidate(**row) for row in read_jsonl(run.dir.candidates, "candidates")]
        run.current_stage = "verify"
        yield run
    finally:
        run.close()


def verify_run_dir(registry: Registry, selected: list[str], run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Verify the run's trained target; writes verification.{jsonl,md,png} and report.json's section."""
    from .stages.train import trained_target
    from .stages.verify import verify
    from .verify_report import write_outputs

    with reopened(registry, run_dir, selected, overrides) as run:
        model = trained_target(run)
        if model is None:
            raise UsageError(f"{run_dir}: no adapter/; train the target first (tuneshift run with target.train, "
                             "or tuneshift train RUN_DIR)")
        section, rows = verify(run, model)
        write_outputs(run.dir.path, section, rows)
        if run.dir.report.exists():
            write_json(run.dir.report, {**read_json(run.dir.report), "verification": section})
    return section


def verify_adapter(registry: Registry, run_dir: Path, adapter: str | Path | None) -> dict[str, Any]:
    """Verify the run's target with another `adapter` (None: the untrained target) on the run's held-out
    prompts, against the same teacher answers: compares targets trained on different data."""
    from .stages.verify import verify

    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
        raise UsageError(f"adapter {adapter}: no adapter_config.json (not a PEFT adapter directory)")
    with reopened(registry, run_dir) as run:
        t = run.cfg.target
        model = ModelSpec(base=t.model, adapter=str(adapter) if adapter else None, trust_remote_code=t.trust_remote_code)
        section, _ = verify(run, model)
    return section
