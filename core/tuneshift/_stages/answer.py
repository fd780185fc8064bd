"""Stage 3: the fine-tuned teacher answers every new, non-duplicate prompt."""

from __future__ import annotations

from tuneshift._stages.base import RunState
from tuneshift.kinds import Candidate


def run(run: RunState, round_: int, fresh: list[Candidate]) -> list[Candidate]:
    todo = [c for c in fresh if c.fate == "pending"]
    answers = run.generate(run.teacher, [c.prompt for c in todo], run.greedy, stage="answer")
    for cand, ans in zip(todo, answers, strict=True):
        if ans.error is not None or not (ans.text or "").strip():
            cand.fate, cand.reason = "generation_error", ans.error or "empty answer"
        else:
            cand.response = ans.text
    return fresh
