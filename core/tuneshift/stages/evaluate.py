"""Stage 7 (optional): accuracy on an evaluation file, for the target before and after, and the teacher."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..kinds import ModelSpec
from ..rundir import read_jsonl_numbered
from ..text import normalise
from .train import trained_target

if TYPE_CHECKING:
    from ..runner import Run


def is_correct(response: str | None, expected: str) -> bool:
    """Normalised containment: the expected answer appears in the response."""
    return bool(response) and normalise(expected) in normalise(response)


def load_eval(path: str) -> list[dict[str, str]]:
    numbered = read_jsonl_numbered(path, "eval")
    rows = [row for _, row in numbered]
    for number, row in numbered:
        if not (isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("answer"), str)):
            raise UsageError(f"eval {path}, line {number}: expected an object with string 'prompt' and 'answer'")
    if not rows:
        raise UsageError(f"eval {path}: empty")
    return rows


def run(run: "Run") -> dict[str, Any] | None:
    if not run.cfg.eval.path:
        return None
    rows = load_eval(run.cfg.eval.path)
    models: dict[str, ModelSpec] = {"teacher": run.teacher}
    if run.cfg.target is not None:
        models["target_before"] = ModelSpec(base=run.cfg.target.model, trust_remote_code=run.cfg.target.trust_remote_code)
        after = trained_target(run)
        if after is not None:
            models["target_after"] = after
    result: dict[str, Any] = {"n": len(rows)}
    for label, model in models.items():
        answers = run.generate(model, [r["prompt"] for r in rows], run.greedy, stage=f"eval:{label}")
        result[label] = sum(is_correct(a.text, r["answer"]) for a, r in zip(answers, rows)) / len(rows)
    return result
