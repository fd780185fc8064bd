"""Stage 3: the fine-tuned teacher answers every new, non-duplicate prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..kinds import Candidate

if TYPE_CHECKING:
    from ..runner import Run


def run(run: "Run", round_: int, fresh: list[Candidate]) -> list[Candidate]:
    todo = [c for c in fresh if c.fate == "pending"]
    answers = run.generate(run.teacher, [c.prompt for c in todo], run.greedy, stage="answer")
    for cand, ans in zip(todo, answers, strict=True):
        if ans.error is not None or not (ans.text or "").strip():
            cand.fate, cand.reason = "generation_error", ans.error or "empty answer"
        else:
            cand.response = ans.text
    return fresh
