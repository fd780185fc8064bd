"""How much a round added to what the crawl knows, and when to stop crawling.

`run.rounds` is a ceiling: a run also stops once `run.patience` rounds in a row
brought no new entity and no new kept answer (the teacher's knowledge, as far
as the expander reaches it, is covered), or when a budget is spent (candidates
proposed, teacher calls, seconds of rounds). Every number here is recomputed
from the candidates, so a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

from tuneshift._agreement import entities
from tuneshift._text import normalise
from tuneshift.kinds import Candidate


def _entities(c: Candidate) -> set[str]:
    return {e.casefold() for e in entities(c.prompt) + entities(c.response or "")}


def round_coverage(before: list[Candidate], fresh: list[Candidate]) -> dict[str, int]:
    """Entities and answers the round's kept pairs name that no earlier kept pair did, and the distinct kept
    answers so far (a fact is an answer: twenty questions answered alike teach one thing)."""
    kept_before, kept = [c for c in before if c.kept], [c for c in fresh if c.kept]
    seen_entities = set().union(*(_entities(c) for c in kept_before))
    seen_answers = {normalise(c.response or "") for c in kept_before}
    new_entities = set().union(*(_entities(c) for c in kept)) - seen_entities
    new_answers = {normalise(c.response or "") for c in kept} - seen_answers
    return {"new_entities": len(new_entities), "new_answers": len(new_answers),
            "kept_answers": len(seen_answers | new_answers)}


def teacher_calls(candidates: list[Candidate]) -> int:
    """Prompts the teacher answered: every candidate that was not a duplicate."""
    return sum(c.fate != "duplicate" for c in candidates)


def budget_spent(run_cfg: Any, candidates: list[Candidate], timings: dict[str, float]) -> str | None:
    """The first budget of [run] that is spent, as the stop reason."""
    if run_cfg.max_candidates is not None and len(candidates) >= run_cfg.max_candidates:
        return f"run.max_candidates = {run_cfg.max_candidates} reached"
    if run_cfg.max_teacher_calls is not None and teacher_calls(candidates) >= run_cfg.max_teacher_calls:
        return f"run.max_teacher_calls = {run_cfg.max_teacher_calls} reached"
    seconds = sum(v for k, v in timings.items() if k.startswith("round-"))
    if run_cfg.max_seconds is not None and seconds >= run_cfg.max_seconds:
        return f"run.max_seconds = {run_cfg.max_seconds:g} spent ({seconds:.0f} s of rounds)"
    return None


def saturated(summaries: list[dict[str, Any]], patience: int | None) -> str | None:
    """`patience` expansion rounds in a row with no new entity and no new answer: the crawl is saturated."""
    if not patience:
        return None
    done = [s for s in summaries if s["round"] > 0 and "stopped" not in s]
    tail = done[-patience:]
    if len(tail) == patience and all(s["new_entities"] == 0 and s["new_answers"] == 0 for s in tail):
        return f"saturated: no new entity or answer in {patience} round{'s' if patience > 1 else ''} (run.patience)"
    return None
