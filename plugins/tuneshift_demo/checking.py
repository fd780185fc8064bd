"""The demo's answer checker: the fact's value appears in the answer (normalised containment)."""

from __future__ import annotations

from tuneshift.stages.evaluate import is_correct


def accuracy(responses: list[str | None], expected: list[str]) -> float:
    if not expected:
        return 0.0
    return sum(is_correct(r, e) for r, e in zip(responses, expected)) / len(expected)


def correct_flags(responses: list[str | None], expected: list[str]) -> list[bool]:
    return [is_correct(r, e) for r, e in zip(responses, expected)]
