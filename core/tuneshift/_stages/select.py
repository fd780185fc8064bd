"""Stage 5: keep the candidates on which the fine-tuned model is confident and the base is not."""

from __future__ import annotations

from collections import Counter

from tuneshift._stages.base import RunState
from tuneshift._text import normalise
from tuneshift.kinds import Candidate


def run(run: RunState, round_: int, fresh: list[Candidate]) -> list[Candidate]:
    scored = [c for c in fresh if c.fate == "pending"]
    kept_before = [c for c in run.candidates if c.kept]
    decisions = run.impl["selector"].decide(scored, kept_before) if scored else []
    for cand, dec in zip(scored, decisions, strict=True):
        cand.score = dec.value
        cand.fate = "kept" if dec.keep else "below_threshold"
        cand.reason = dec.reason or None
        cand.extra.update(dec.extra)
    cap = run.cfg.run.max_per_answer
    if cap:
        cap_repeats(kept_before, scored, cap)
    run.progress("select")(len(scored))
    return fresh


def cap_repeats(kept_before: list[Candidate], scored: list[Candidate], cap: int) -> None:
    """Drop kept candidates whose answer is already kept `cap` times (best-scored first this round):
    twenty questions answered "X works as a botanist" teach the target to say it to anything."""
    counts = Counter(normalise(c.response or "") for c in kept_before)
    for cand in sorted((c for c in scored if c.kept), key=lambda c: -(c.score or 0.0)):
        key = normalise(cand.response or "")
        if counts[key] >= cap:
            cand.fate, cand.reason = "repeated_answer", f"answer already kept {counts[key]} times"
        else:
            counts[key] += 1
