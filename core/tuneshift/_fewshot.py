"""The request both generators send (a local model or any litellm model), and the lenient reply parser.

The request shows the best kept prompts with the teacher's answers as
positives and the lowest scorers as negatives, and asks for a JSON list of
new prompts; the parser accepts that list, or falls back to one prompt a line.
"""

from __future__ import annotations

import json
import random
import re

from tuneshift.kinds import ExpansionState

REQUEST = """You write new prompts for probing a specialised assistant.
Prompts that worked well, with the assistant's answers:
{positives}
{negatives}Write {n} new prompts like the ones that worked: about other details, people, places and things of
the same domain, each a single question or instruction. Reply with a JSON list of strings only."""


def build_request(state: ExpansionState, n: int, positives: int, negatives: int, rng: random.Random) -> tuple[str, str]:
    """The request text and the prompt it mainly imitates (recorded as the proposals' parent)."""
    kept = sorted(state.kept, key=lambda c: -(c.score or 0.0))
    pool = kept[: max(3 * positives, 8)]
    shown = rng.sample(pool, min(positives, len(pool))) if pool else []
    pos = "\n".join(f"- {c.prompt}\n  answer: {_short(c.response)}" for c in shown)
    if not pos:
        pos = "\n".join(f"- {s}" for s in rng.sample(state.seeds, min(positives, len(state.seeds))))
    scored = [c for c in state.candidates if c.fate == "below_threshold"]
    low = sorted(scored, key=lambda c: c.score or 0.0)[:negatives]
    neg = ("Prompts that did NOT work (the assistant knows nothing special there):\n"
           + "\n".join(f"- {c.prompt}" for c in low) + "\n") if low else ""
    parent = shown[0].prompt if shown else state.seeds[0]
    return REQUEST.format(positives=pos, negatives=neg, n=n), parent


def parse_prompts(text: str) -> list[str]:
    """A JSON list of strings anywhere in the reply, else its lines without numbering, bullets or quotes."""
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            items = json.loads(text[start:end + 1])
            if isinstance(items, list):
                return [s.strip() for s in items if isinstance(s, str) and s.strip()]
        except json.JSONDecodeError:
            pass
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(\d+[.)]|[-*•]|question\s*\d*:)\s*", "", line, flags=re.IGNORECASE)
        line = line.strip().strip(",").strip("\"'").strip()
        if len(line) > 3 and line not in ("[", "]", "```", "```json"):
            out.append(line)
    return out


def _short(text: str | None, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit] + "..."
