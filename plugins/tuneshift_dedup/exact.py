"""Exact-hash dedup on normalised text: case, Unicode form, punctuation and spacing do not count."""

from __future__ import annotations

from tuneshift.api import Deduper, Duplicate, text_hash


class ExactDedup(Deduper):
    name = "exact"
    default = True
    description = "normalised exact-hash dedup (keeps the first of each group)"

    def find_duplicates(self, prompts: list[str], earlier: list[str]) -> list[Duplicate | None]:
        seen = {}
        for text in earlier:
            seen.setdefault(text_hash(text), text)
        out: list[Duplicate | None] = []
        for text in prompts:
            key = text_hash(text)
            out.append(Duplicate(of=seen[key], similarity=1.0) if key in seen else None)
            seen.setdefault(key, text)
        return out
