"""Stage 5: keep the candidates on which the fine-tuned model is confident and the base is not."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..kinds import Candidate

if TYPE_CHECKING:
    from ..runner import Run


def run(run: "Run", round_: int, fresh: list[Candidate]) -> list[Candidate]:
    scored = [c for c in fresh if c.fate == "pending"]
    kept_before = [c for c in run.candidates if c.kept]
    decisions = run.impl["selector"].decide(scored, kept_before) if scored else []
    for cand, dec in zip(scored, decisions, strict=True):
        cand.score = dec.value
        cand.fate = "kept" if dec.keep else "below_threshold"
        cand.reason = dec.reason or None
        cand.extra.update(dec.extra)
    run.progress("select")(len(scored))
    return fresh
