"""Text normalisation shared by dedup and answer checking: case, Unicode form, punctuation and spacing."""

from __future__ import annotations

import re
import unicodedata


def normalise(text: str) -> str:
    """Case-folded, NFKC, punctuation to spaces, runs of space to one: what makes two texts "the same"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def text_hash(text: str) -> str:
    """A short stable key of the normalised text: prompts that differ only in case, spacing or punctuation
    share it."""
    import hashlib

    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=16).hexdigest()
