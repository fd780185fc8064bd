"""Stage 7 (optional): accuracy on an evaluation file, for the target before and after, and the teacher."""

from __future__ import annotations

from typing import Any

from tuneshift._inputs import load_eval
from tuneshift._stages.base import RunState
from tuneshift._text import normalise
from tuneshift.kinds import ModelSpec


def is_correct(response: str | None, expected: str) -> bool:
    """Normalised containment: the expected answer appears in the response."""
    return bool(response) and normalise(expected) in normalise(response)


def run(run: RunState) -> dict[str, Any] | None:
    if not run.cfg.eval.path:
        return None
    rows = load_eval(run.cfg.eval.path)
    models: dict[str, ModelSpec] = {"teacher": run.teacher}
    if run.cfg.target is not None:
        models["target_before"] = run.target
        after = run.trained_target()
        if after is not None:
            models["target_after"] = after
    result: dict[str, Any] = {"n": len(rows)}
    for label, model in models.items():
        answers = run.generate(model, [r["prompt"] for r in rows], run.greedy, stage=f"eval:{label}")
        result[label] = sum(is_correct(a.text, r["answer"]) for a, r in zip(answers, rows)) / len(rows)
        run.impl["answerer"].release()  # one model at a time: the next label loads its own
    return result
