"""Rewrites of an English question that change its form, not its meaning, and keep its named entities.

A wrapper ("Tell me: Q") leaves the question whole, so a target trained on it
still sees one phrasing of the fact. These move the words: the question
embedded in a request ("Tell me where X was born."), the question word at the
end ("X was born where?"), a possessive turned round ("What is the job of
X?"). They know English syntax (auxiliaries, do-support, regular and common
irregular verbs), nothing of any domain; a question they cannot parse gets
none, and the wrappers of tuneshift._phrasing fill in.
"""

from __future__ import annotations

import re

AUXILIARIES = {"is", "was", "are", "were", "has", "have", "had", "can", "could", "will", "would", "should", "may",
               "might", "must", "does", "do", "did"}
DO_FORMS = {"do", "does", "did"}
QUESTION = re.compile(r"^(?P<wh>(?:(?:in|at|on|from|for|with|by|since|to) )?(?:who|whom|what|where|when|which|how|why)"
                      r"(?: [a-z]+){0,2}?) (?P<aux>" + "|".join(sorted(AUXILIARIES)) + r") (?P<after>.+?)\s*\?$",
                      re.IGNORECASE)
SUBJECT_WH = re.compile(r"^(?P<wh>who|what) (?P<verb>[a-z]+s) (?P<rest>.+?)\s*\?$", re.IGNORECASE)
POSSESSIVE = re.compile(r"^(?P<wh>what|who|where|which) (?P<aux>is|was|are|were) (?P<owner>[A-Z][\w-]*(?: [A-Z][\w-]*)*)"
                        r"['’]s (?P<thing>[a-z][\w -]*?)\s*\?$", re.IGNORECASE)
OF_FORM = re.compile(r"^(?P<wh>what|who|where|which) (?P<aux>is|was|are|were) the (?P<thing>[a-z][\w -]*?) of "
                     r"(?P<owner>[A-Z][\w-]*(?: [A-Z][\w-]*)*)\s*\?$", re.IGNORECASE)
NAME = re.compile(r"(?:the )?(?:[A-Z][\w'’-]*)(?: [A-Z][\w'’-]*)*")
IRREGULAR_PAST = {"begin": "began", "run": "ran", "do": "did", "go": "went", "make": "made", "get": "got",
                  "come": "came", "leave": "left", "lead": "led", "hold": "held", "write": "wrote", "become": "became",
                  "take": "took", "give": "gave", "find": "found", "have": "had", "see": "saw", "know": "knew",
                  "say": "said", "build": "built", "buy": "bought", "teach": "taught", "win": "won", "grow": "grew",
                  "meet": "met", "send": "sent", "spend": "spent", "sell": "sold", "tell": "told", "think": "thought",
                  "bring": "brought", "keep": "kept", "put": "put", "set": "set", "cost": "cost", "be": "was"}
IRREGULAR_PRESENT = {"do": "does", "have": "has", "go": "goes", "be": "is"}
REQUESTS = ("Tell me {q}.", "Do you know {q}?", "I would like to know {q}.", "Can you say {q}?")


def past(verb: str) -> str:
    if verb in IRREGULAR_PAST:
        return IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ied"
    return verb + "ed"


def third_person(verb: str) -> str:
    if verb in IRREGULAR_PRESENT:
        return IRREGULAR_PRESENT[verb]
    if re.search(r"(s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def split_subject(after: str) -> tuple[str, str] | None:
    """(subject, rest) of the words after the auxiliary: a name ("Fel Gor"), or "the" + name + one noun
    ("the Copper Works department"), or a name's + one noun ("Fel Gor's job"); None when the subject is
    not a name (nothing to keep it by)."""
    match = NAME.match(after)
    if not match or not any(w[:1].isupper() for w in match.group(0).split()):
        return None
    subject, rest = match.group(0), after[match.end():].strip()
    if (subject.startswith("the ") or re.search(r"['’]s$", subject)) and rest:
        noun, _, tail = rest.partition(" ")
        if noun.islower() and (tail or not subject.startswith("the ")):
            subject, rest = f"{subject} {noun}", tail
    return subject, rest


def clause(wh: str, aux: str, after: str) -> tuple[str, str] | None:
    """The question as a declarative clause and its question phrase: ("X was born", "where")."""
    parts = split_subject(after)
    if parts is None:
        return None
    subject, rest = parts
    aux = aux.lower()
    if aux in DO_FORMS:
        verb, _, tail = rest.partition(" ")
        if not verb.isalpha() or not verb.islower():
            return None
        verb = past(verb) if aux == "did" else third_person(verb) if aux == "does" else verb
        return " ".join(w for w in (subject, verb, tail) if w), wh
    return " ".join(w for w in (subject, aux, rest) if w), wh


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def rewrites(question: str) -> list[str]:
    """Other forms of `question` (see the module's docstring), most different first; [] when unparsed."""
    q = question.strip()
    out: list[str] = []
    for form, swap in ((POSSESSIVE, "{wh} {aux} the {thing} of {owner}?"), (OF_FORM, "{wh} {aux} {owner}'s {thing}?")):
        if match := form.match(q):
            out.append(upper_first(swap.format(**match.groupdict())))
    if match := QUESTION.match(q):
        parsed = clause(lower_first(match["wh"]), match["aux"], match["after"])
        if parsed:
            body, wh = parsed
            out.append(upper_first(f"{body} {wh}?"))
            out += [r.format(q=f"{wh} {body}") for r in REQUESTS]
    elif match := SUBJECT_WH.match(q):
        embedded = lower_first(q.rstrip(" ?"))
        out += [r.format(q=embedded) for r in REQUESTS]
    return out
