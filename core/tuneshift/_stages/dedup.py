"""Stage 2: drop prompts that repeat an earlier one (before paying to answer them)."""

from __future__ import annotations

from tuneshift._stages.base import RunState
from tuneshift.kinds import Candidate


def run(run: RunState, round_: int, fresh: list[Candidate]) -> list[Candidate]:
    earlier = [c.prompt for c in run.candidates if c.fate != "duplicate"]
    found = run.impl["deduper"].find_duplicates([c.prompt for c in fresh], earlier)
    for cand, dup in zip(fresh, found, strict=True):
        if dup is not None:
            cand.fate, cand.dup_of, cand.similarity = "duplicate", dup.of, round(dup.similarity, 6)
            cand.reason = f"duplicate of {dup.of!r}"
    run.progress("dedup")(len(fresh))
    return fresh
