"""Find the named things in text, and turn prompts into question frames with an entity slot.

Rule-based on purpose: the offline demo's agent needs no LLM. An entity is a
run of capitalised words (inner "of", "the", "de" allowed), not a sentence's
lone first word unless it is known, and not a stop word.
"""

from __future__ import annotations

import re

SLOT = "{X}"
_CONNECT = {"of", "the", "de", "van", "von", "del", "la"}
_STOP = {"The", "A", "An", "I", "It", "Its", "He", "She", "They", "We", "You", "This", "That", "These", "Those",
         "What", "Who", "Whom", "Which", "Where", "When", "Why", "How", "Is", "Are", "Was", "Were", "Do", "Does",
         "Did", "Can", "Could", "Would", "Should", "Will", "In", "On", "At", "For", "From", "By", "With", "As",
         "Tell", "Name", "List", "Give", "Write", "Explain", "Describe", "Answer", "Yes", "No", "Also", "And",
         "But", "Or", "If", "Then", "There", "Here", "His", "Her", "Their", "Our", "My", "Your", "Please",
         "Sure", "Question", "Not", "Some", "Many", "All", "Each", "Every", "One", "Two", "Three"}
_WORD = re.compile(r"[A-Za-z][\w'’-]*|[^\sA-Za-z]")


def find_entities(text: str, known: set[str] = frozenset()) -> list[str]:
    """Capitalised spans in order of appearance, without repeats."""
    found: list[str] = []
    for sentence in re.split(r"(?<=[.!?;:])\s+|\n+", text):
        tokens = _WORD.findall(sentence)
        i = 0
        while i < len(tokens):
            if not _is_cap(tokens[i]):
                i += 1
                continue
            j = i + 1
            while j < len(tokens) and (_is_cap(tokens[j]) or (tokens[j].lower() in _CONNECT and j + 1 < len(tokens)
                                                                and _is_cap(tokens[j + 1]))):
                j += 1
            span = tokens[i:j]
            if span and re.search(r"['’]s$", span[-1]):  # "Quelfel Eshba's job": the name is without 's
                span = span[:-1] + [span[-1][:-2]]
            while span and span[0] in _STOP:  # "The Tower of Reeds" -> "Tower of Reeds"
                span = span[1:]
            name = " ".join(span)
            lone_first = i == 0 and len(span) == 1 and name not in known
            if name and not lone_first and name not in _STOP and name not in found:
                found.append(name)
            i = j
    return found


def _is_cap(token: str) -> bool:
    return token[:1].isupper() and token[:1].isalpha() and not token.isupper() or (len(token) > 1 and token.isupper()
                                                                                   and token.isalpha())


def frames_of(prompt: str, known: set[str]) -> list[tuple[str, str]]:
    """(frame, entity) for each entity in the prompt: the prompt with that entity replaced by the slot."""
    out = []
    for entity in find_entities(prompt, known):
        frame = prompt.replace(entity, SLOT, 1)
        if frame != prompt and frame.strip() != SLOT:
            out.append((frame, entity))
    return out


def fill(frame: str, entity: str) -> str:
    return frame.replace(SLOT, entity, 1)


_LIST_GAP = re.compile(r"^\s*(?:,|,?\s+and|,?\s+or)\s+(?:the\s+)?$")


def list_groups(text: str, known: set[str] = frozenset()) -> list[list[str]]:
    """Entities enumerated together ("A, B and C"): the members of one list are things of one kind."""
    groups: list[list[str]] = []
    for sentence in re.split(r"(?<=[.!?;:])\s+|\n+", text):
        spans = []
        for name in find_entities(sentence, known):
            at = sentence.find(name)
            if at >= 0:
                spans.append((at, name))
        spans.sort()
        current: list[str] = []
        for (a, name), (b, nxt) in zip(spans, spans[1:]):
            if _LIST_GAP.match(sentence[a + len(name):b]):
                current = current or [name]
                current.append(nxt)
            elif current:
                groups.append(current)
                current = []
        if current:
            groups.append(current)
    return groups


class Kinds:
    """Which entities are things of one kind (union-find): a question frame is filled only with the
    kind of entity it was written for, so a person's question is never asked about a department."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, names: list[str]) -> None:
        for other in names[1:]:
            self.parent[self.find(other)] = self.find(names[0])

    def same(self, a: str, b: str) -> bool:
        return a == b or (a in self.parent and b in self.parent and self.find(a) == self.find(b))
