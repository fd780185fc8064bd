"""`tuneshift demo`: the embedded default job.

The SmolLM2 -> Gemma 3 transfer benchmark is not available yet; until it
lands, the demo builds the tiny example's models and runs the whole pipeline
on them, so a fresh machine shows every stage working.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import click

from .errors import UsageError

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _tiny_builder() -> Any:
    path = SOURCE_ROOT / "examples" / "tiny" / "build.py"
    if not path.is_file():
        raise UsageError("tuneshift demo needs the source checkout (examples/tiny/ was not found)")
    spec = importlib.util.spec_from_file_location("tuneshift_tiny_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_demo(state: Any, preset: str, out_dir: Path, n_seeds: int | None) -> None:
    from .pipeline import execute
    from .runner import Run

    click.echo(f"note: the {preset!r} SmolLM2 -> Gemma 3 benchmark is not available yet; "
               "running the tiny example end to end instead", err=True)
    models = out_dir / "models"
    _tiny_builder().build(models)
    overrides = [f"teacher.base={models / 'teacher-base'}", f"teacher.adapter={models / 'teacher-adapter'}",
                 f"target.model={models / 'target'}", f"seeds.path={models / 'seeds.jsonl'}",
                 f"eval.path={models / 'eval.jsonl'}"]
    overrides = [f'{k}="{v}"' for k, v in (o.split("=", 1) for o in overrides)]
    job = Run(SOURCE_ROOT / "examples" / "tiny" / "config.toml", out_dir / "run", overrides,
              state.registry, state.selected).open()
    try:
        report = execute(job)
    finally:
        job.close()
    click.echo(f"kept {report['dataset_size']} of {report['counts']['candidates']} candidates; "
               f"report in {out_dir / 'run' / 'report.json'}", err=True)
