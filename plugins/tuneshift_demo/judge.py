"""Ground truth for a synthetic pair: is the teacher's answer to a discovered prompt right?

The domain knows every fact, so a (prompt, answer) can be judged: find the
entity the prompt asks about (the longest known name in it) and the relation
(by the template words of each relation); the answer is right when it holds
the fact's value (every item, for lists). A prompt about no known entity is
a question about something that does not exist: any answer to it is made up,
so it counts as wrong, as does a question whose relation does not exist for
the entity it names ("When did <a department> join?"). An open question
("What is connected to X?") is left unjudged.
"""

from __future__ import annotations

import re

from tuneshift.api import normalise

from .domain import Domain, Fact

CUES: dict[str, tuple[str, ...]] = {
    "birthplace": ("born", "birthplace", "come from", "comes from", "hometown"),
    "role": ("job", "role", "position", "do at", "does at", "work as", "occupation"),
    "joined": ("join", "start", "been at", "since what year"),  # a person's start is the year they joined
    "department": ("department does", "department is", "what department", "in which department", "where in",
                   "where does"),  # where a person works, inside the organisation: the department
    "head": ("head", "runs the", "run the", "in charge"),
    "members": ("works in", "work in", "members", "which people", "who is in"),
    "projects": ("projects",),
    "lead": ("leads", "lead of", "responsible"),
    "city": ("based", "city", "located", "where is project"),
    "started": ("start", "begin", "began", "launched"),
    "departments": ("departments",),
}
SUBJECT_KINDS = {"birthplace": "person", "role": "person", "joined": "person", "department": "person",
                 "head": "department", "members": "department", "projects": "department", "lead": "project",
                 "city": "project", "started": "project", "departments": "organisation"}


class Judge:
    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self.facts: dict[tuple[str, str], Fact] = {}
        for fact in domain.facts:
            subject = f"Project {fact.subject}" if fact.relation in ("lead", "city", "started") else fact.subject
            self.facts[(subject, fact.relation)] = fact
        self.names = sorted(domain.entities, key=len, reverse=True)

    def mentioned(self, prompt: str) -> list[str]:
        """Known names in the prompt, in order of appearance (a longer name wins over one inside it)."""
        found: dict[int, str] = {}
        for name in self.names:  # longest first
            for match in re.finditer(rf"\b{re.escape(name)}\b", prompt):
                if not any(a <= match.start() < a + len(n) for a, n in found.items()):
                    found[match.start()] = name
        return [found[k] for k in sorted(found)]

    def relation(self, prompt: str, kind: str) -> str | None:
        text = prompt.lower()
        for relation, cues in CUES.items():
            if SUBJECT_KINDS[relation] == kind and any(c in text for c in cues):
                return relation
        return None

    def fact(self, prompt: str) -> Fact | None:
        """The fact a question asks: its first named entity that the question's relation fits."""
        for subject in self.mentioned(prompt):
            relation = self.relation(prompt, self.domain.entities[subject])
            if relation and (subject, relation) in self.facts:
                return self.facts[(subject, relation)]
        return None

    def __call__(self, prompt: str, answer: str | None) -> str:
        """"right", "wrong" or "unjudged"."""
        if not self.mentioned(prompt):
            return "wrong"  # asks about an entity that does not exist
        if (fact := self.fact(prompt)) is not None:
            items = re.split(r", | and ", fact.value)
            said = normalise(answer or "")
            return "right" if all(normalise(i) in said for i in items) else "wrong"
        text = prompt.lower()
        if any(c in text for cues in CUES.values() for c in cues):
            return "wrong"  # a fact that does not exist ("When did <a department> join?"): an answer is made up
        return "unjudged"


def false_keep_rate(verdicts: list[str]) -> float | None:
    """Share of judged kept pairs whose answer is wrong (None when nothing could be judged)."""
    judged = [v for v in verdicts if v != "unjudged"]
    return sum(v == "wrong" for v in judged) / len(judged) if judged else None
