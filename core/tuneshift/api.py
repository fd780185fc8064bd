"""The one module a plugin imports: everything here is the plugin API, versioned by `API_VERSION`.

The rest of the `tuneshift` package (modules with a leading underscore) may
change in any release; what is named here changes only with `API_VERSION`,
and an implementation written for another version is listed as an error by
`tuneshift plugins` instead of being loaded. Importing this module imports no
model library. Every name is documented in docs/plugins.md (tests/test_docs.py
checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from tuneshift import PLUGIN_API_VERSION as API_VERSION
from tuneshift import hookimpl
from tuneshift._agreement import content_agreement, entities, spearman
from tuneshift._phrasing import rephrasings
from tuneshift._cache import fingerprint
from tuneshift._commands.state import State, output_path
from tuneshift._config import context_length
from tuneshift._errors import RunError, TuneshiftError, UsageError
from tuneshift._fewshot import build_request, parse_prompts
from tuneshift._hub import hub_id, is_hub_id, local_model
from tuneshift._processes import is_main_process, refuse_multi_process, world_size
from tuneshift._rundir import (
    atomic_write_text,
    claim,
    read_json,
    read_jsonl,
    read_jsonl_numbered,
    write_json,
    write_jsonl,
)
from tuneshift._stages.evaluate import is_correct
from tuneshift._stages.score import ppl_ratio
from tuneshift._text import normalise, text_hash
from tuneshift.hookspecs import Register
from tuneshift.kinds import (
    Answer,
    Answerer,
    Candidate,
    Context,
    Decision,
    Deduper,
    Duplicate,
    Expander,
    ExpansionState,
    Implementation,
    ModelSpec,
    Options,
    Proposal,
    Sampling,
    Score,
    Scorer,
    Selector,
    Trainer,
)

__all__ = [
    # declaring a plugin
    "API_VERSION", "hookimpl", "Register",
    # the kinds and the records they exchange
    "Implementation", "Options", "Context", "Expander", "Answerer", "Deduper", "Scorer", "Selector", "Trainer",
    "ModelSpec", "Sampling", "Answer", "Score", "Proposal", "Candidate", "ExpansionState", "Duplicate",
    "Decision",
    # errors: one line and an exit code (2 usage, 1 run time)
    "TuneshiftError", "UsageError", "RunError",
    # the method's numbers and texts
    "ppl_ratio", "normalise", "text_hash", "is_correct", "spearman", "build_request", "parse_prompts",
    "rephrasings", "content_agreement", "entities",
    "context_length",
    # models: a path or a Hugging Face hub id
    "local_model", "is_hub_id", "hub_id",
    # files: atomic, strict JSON, only where tuneshift owns the path
    "fingerprint", "atomic_write_text", "write_json", "write_jsonl", "read_json", "read_jsonl",
    "read_jsonl_numbered", "claim",
    # processes
    "world_size", "is_main_process", "refuse_multi_process",
    # for command plugins: the CLI's state, and whole runs
    "State", "output_path", "build_context", "check_pipeline", "run_pipeline", "verify_adapter",
]


def build_context(state: State, teacher: ModelSpec, target: ModelSpec | None = None, seed: int = 0,
                  work_dir: str | Path = ".", progress: Callable[[int], None] | None = None) -> Context:
    """The Context the core would give an implementation outside a run (every service present: `generate`
    and `score` call the implementations the state picks, `cached` computes, `make` builds by name)."""
    from tuneshift._models import Models
    from tuneshift._models import build_context as build

    return build(state, Models(teacher, target), seed, work_dir, progress=progress)


def check_pipeline(state: State, config_path: str | Path, out_dir: str | Path, overrides: Sequence[str] = ()) -> None:
    """Every check `tuneshift run CONFIG --out OUT` makes before it starts (config, files, plugins and their
    options, each implementation's `check()`), touching nothing on disk: a UsageError if one fails."""
    from tuneshift._runner import Run

    Run(config_path, out_dir, list(overrides), state).close()


def run_pipeline(state: State, config_path: str | Path, out_dir: str | Path,
                 overrides: Sequence[str] = ()) -> dict[str, Any]:
    """`tuneshift run CONFIG --out OUT` with the state's plugins (--plugin / --no-plugin honoured), in this
    process; resumes like the command. Returns report.json's content."""
    from tuneshift._pipeline import run_config

    return run_config(state, config_path, out_dir, overrides)


def verify_adapter(state: State, run_dir: str | Path, adapter: str | Path | None) -> dict[str, Any]:
    """Verify the finished run's target with another `adapter` (None: untrained) on the run's held-out
    prompts against the same teacher answers: report.json's verification section for that adapter."""
    from tuneshift._commands.verify import verify_adapter as verify

    return verify(state, Path(run_dir), adapter)
