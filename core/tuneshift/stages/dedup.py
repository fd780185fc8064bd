"""Stage 2: drop prompts that repeat an earlier one (before paying to answer them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..kinds import Candidate

if TYPE_CHECKING:
    from ..runner import Run


def run(run: "Run", round_: int, fresh: list[Candidate]) -> list[Candidate]:
    earlier = [c.prompt for c in run.candidates if c.fate != "duplicate"]
    found = run.impl["deduper"].find_duplicates([c.prompt for c in fresh], earlier)
    for cand, dup in zip(fresh, found, strict=True):
        if dup is not None:
            cand.fate, cand.dup_of, cand.similarity = "duplicate", dup.of, round(dup.similarity, 6)
            cand.reason = f"duplicate of {dup.of!r}"
    run.progress("dedup")(len(fresh))
    return fresh
