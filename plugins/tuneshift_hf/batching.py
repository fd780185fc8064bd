"""Group sequences of similar length into batches under a row cap and a padded-token budget.

Sorting by length before padding keeps the padding (wasted work) small, and a
token budget rather than a fixed row count keeps memory flat whatever the
lengths; both scorer and answerer use it.
"""

from __future__ import annotations


def plan_batches(lengths: list[int], max_rows: int, max_tokens: int, copies: int = 1) -> list[list[int]]:
    """Indices grouped into batches of similar length: at most max_rows rows and, padded to the longest
    and repeated `copies` times, at most max_tokens tokens (a longer sequence still gets a batch of its own).
    Deterministic: ties keep their input order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending, so the newest row sets the width
        if current and (len(current) + 1 > max_rows or (len(current) + 1) * lengths[i] * copies > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else [])
