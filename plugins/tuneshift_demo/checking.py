"""The demo's answer checker: the fact's value appears in the answer (normalised containment)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tuneshift.api import is_correct


def accuracy(responses: list[str | None], expected: list[str]) -> float:
    if not expected:
        return 0.0
    return sum(is_correct(r, e) for r, e in zip(responses, expected)) / len(expected)


def correct_flags(responses: list[str | None], expected: list[str]) -> list[bool]:
    return [is_correct(r, e) for r, e in zip(responses, expected)]


def guess_accuracy(evals: list[dict[str, Any]]) -> float:
    """Accuracy of answering every question with its relation's most common value: what a target that
    learnt the domain's vocabulary but none of its facts can score, a floor above zero_shot's."""
    modal = {relation: Counter(e["answer"] for e in evals if e["relation"] == relation).most_common(1)[0][0]
             for relation in {e["relation"] for e in evals}}
    return accuracy([modal[e["relation"]] for e in evals], [e["answer"] for e in evals])


def beats(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Is a ahead of b by more than twice the larger std over seeds? Unknown (None) from one seed."""
    margin = a["accuracy"] - b["accuracy"]
    spread = 2 * max(a["std"], b["std"])
    known = len(a["per_seed"]) > 1
    return {"margin": round(margin, 4), "twice_std": round(spread, 4), "beats": (margin > spread) if known else None}
