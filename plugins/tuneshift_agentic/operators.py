"""The agent's operators: each turns what the run has learnt into new prompts of one kind.

Every operator yields (prompt, parent, detail) ideas, best first; the agent
takes the first ones that are new. Operators read the `Knowledge` that the
agent builds from the candidates so far.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Iterator

from tuneshift.api import Candidate

from .entities import SLOT, Kinds, fill, find_entities, frames_of, list_groups

Idea = tuple[str, str | None, dict]
GENERIC_FRAMES = ["Tell me about {X}.", "Who or what is {X}?", "What do you know about {X}?", "Who is {X}?",
                  "What is {X}?", "Where is {X}?", "When did {X} start?", "What does {X} do?",
                  "Where is {X} from?", "Where does {X} work?", "Who leads {X}?", "What is {X} part of?"]
"""Questions that fit any person, place, group or thing (who, what, where, when, part of): they reach
relations the seeds never ask. Which of them suit which kind of entity is learnt (`probe`)."""
RELATED_FRAMES = ["What is connected to {X}?", "List the people, places and things related to {X}.",
                  "Who works with {X}?", "What belongs to {X}?"]
PARAPHRASES = ["Could you tell me: {p}", "Quick question. {p}", "I would like to know this. {p}",
               "Please answer: {p}"]
DEEPEN = ["{p} Explain your answer.", "{p} Give as much detail as you can.", "{p} Also say why that is so."]
FORMATS = ["{p} Answer in one sentence.", "{p} Reply with just the name.", "Answer as a short list: {p}"]


@dataclass
class Knowledge:
    """What the candidates so far reveal: frames, entities, and how each frame fared."""

    kept: list[Candidate]
    asked: set[str]
    frames: dict[str, str] = field(default_factory=dict)       # frame -> the prompt it came from
    anchors: dict[str, str] = field(default_factory=dict)      # frame -> the entity its slot held
    kinds: Kinds = field(default_factory=Kinds)                # which entities are of one kind
    entities: dict[str, str] = field(default_factory=dict)     # entity -> the prompt whose answer named it
    subjects: dict[str, str] = field(default_factory=dict)     # seeds' entities of one kind -> their seed
    frame_stats: dict[str, list[int]] = field(default_factory=dict)  # frame -> [kept, tried]
    kind_stats: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (frame, kind) -> [kept, tried]

    @classmethod
    def from_candidates(cls, seeds: list[str], candidates: list[Candidate]) -> "Knowledge":
        kept = sorted((c for c in candidates if c.kept), key=lambda c: -(c.score or 0.0))
        k = cls(kept=kept, asked={c.prompt.casefold() for c in candidates})
        known: set[str] = set()
        for c in kept:
            known.update(find_entities(c.response or "", known))
        for prompt in seeds + [c.prompt for c in kept if c.operator not in REWRITES]:
            for frame, entity in frames_of(prompt, known):
                k.frames.setdefault(frame, prompt)
                k.anchors.setdefault(frame, entity)
        k.subjects = seed_subjects(seeds, known, k.kinds)
        for c in kept:  # lists in a kept answer say which names are of one kind (a dropped one may be made up)
            for group in list_groups(c.response or "", known):
                k.kinds.join(group)
        answers_of: dict[tuple[str, str], list[str]] = {}  # so do the answers to one frame, written alike
        for c in kept:
            asked = set(find_entities(c.prompt, known))
            new = [e for e in find_entities(c.response or "", known) if e not in asked]
            if len(new) == 1:
                for frame, _ in frames_of(c.prompt, known):
                    answers_of.setdefault((frame, answer_pattern(c.response or "", asked, new[0])), []).append(new[0])
        for values in answers_of.values():
            k.kinds.join(values)
        for c in kept:
            for entity in find_entities(c.response or "", known):
                k.entities.setdefault(entity, c.prompt)
        for c, new in zip(candidates, novel_answers(candidates)):
            frame = c.extra.get("frame")
            if frame and c.fate != "duplicate":
                for stats in (k.frame_stats.setdefault(frame, [0, 0]),
                              k.kind_stats.setdefault((frame, k.kind_of(c.extra.get("entity", ""))), [0, 0])):
                    stats[0] += new
                    stats[1] += 1
        return k

    def kind_of(self, entity: str) -> str:
        """A name for the entity's kind: the representative of its group (itself when alone)."""
        return self.kinds.find(entity) if entity in self.kinds.parent else entity

    def mentioned(self, entity: str) -> bool:
        return any(entity.casefold() in a for a in self.asked)

    def fits(self, frame: str, entity: str) -> bool:
        """Whether `entity` is of the kind the frame was written for (generic frames fit anything)."""
        anchor = self.anchors.get(frame)
        return anchor is None or self.kinds.same(anchor, entity)


def answer_pattern(answer: str, asked: set[str], named: str) -> str:
    """The answer's wording around its names: "X works in Y." and "X works in the Y department." are
    written differently, so a town and a department answering one frame are not taken for one kind."""
    text = answer.replace(named, "{Y}")
    for entity in sorted(asked, key=len, reverse=True):
        text = text.replace(entity, SLOT)
    return " ".join(text.casefold().split())


def follow(k: Knowledge, rng: random.Random) -> Iterator[Idea]:
    """Ask about entities the teacher named in its answers, in the frames that worked best."""
    fresh = [e for e in k.entities if not k.mentioned(e)] or list(k.entities)
    by_sample = lambda f: -_sample(k.frame_stats.get(f, [0, 0]), rng)  # noqa: E731
    # the frames learnt from questions first; two generic ones so that every entity gets asked something
    frames = sorted(k.frames, key=by_sample) + sorted(GENERIC_FRAMES, key=by_sample)[:2]
    for frame in frames:  # breadth first: every new entity gets a question before any gets a second
        for entity in fresh:
            if k.fits(frame, entity):
                yield fill(frame, entity), k.entities[entity], {"frame": frame, "entity": entity}


def probe(k: Knowledge, rng: random.Random) -> Iterator[Idea]:
    """Ask every known entity the generic questions, first those that gave new answers for its kind.

    `follow` asks a new entity two generic questions; this asks the rest, so relations the seeds
    never ask (where someone works, where a project is) are reached for every entity."""
    names = list(dict.fromkeys(list(k.entities) + [e for c in k.kept for e in find_entities(c.prompt, set(k.entities))]))
    def promise(frame: str, entity: str) -> float:  # success rate with a uniform prior: untried 0.5
        kept, tried = k.kind_stats.get((frame, k.kind_of(entity)), [0, 0])
        return (1 + kept) / (2 + tried)

    ideas = [(promise(frame, e), rng.random(), frame, e) for frame in GENERIC_FRAMES for e in names]
    for _, _, frame, entity in sorted(ideas, reverse=True):
        yield fill(frame, entity), k.entities.get(entity), {"frame": frame, "entity": entity}


def related(k: Knowledge, rng: random.Random) -> Iterator[Idea]:
    """Ask for lists and relations around a known entity, to find its neighbours."""
    names = list(k.entities) + [e for c in k.kept for e in find_entities(c.prompt)]
    rng.shuffle(names)
    for frame in RELATED_FRAMES:
        for entity in dict.fromkeys(names):
            yield fill(frame, entity), k.entities.get(entity), {"frame": frame, "entity": entity}


def seed_subjects(seeds: list[str], known: set[str], kinds: Kinds) -> dict[str, str]:
    """Seeds' entities that follow the same words ("Hi, my X ...", "Hi, my Y ..."): the inputs of one task
    written alike, so of one kind (joined in `kinds`). Each -> its seed. Only the user's seeds are read:
    the run's own generic questions ("Where is X?") would make a person and a project alike."""
    after: dict[str, list[tuple[str, str]]] = {}
    for prompt in seeds:
        for frame, entity in frames_of(prompt, known):
            lead = " ".join(frame.split(SLOT, 1)[0].casefold().split())
            if len(lead.split()) >= 2:
                after.setdefault(lead, []).append((entity, prompt))
    subjects: dict[str, str] = {}
    for found in after.values():
        names = list(dict.fromkeys(e for e, _ in found))
        if len(names) > 1:
            kinds.join(names)
            for entity, prompt in found:
                subjects.setdefault(entity, prompt)
    return subjects


def swap(k: Knowledge, rng: random.Random) -> Iterator[Idea]:
    """Broaden: a kept prompt's frame with another known entity in the slot (one named in an answer, or
    another subject of seeds written alike: a task's inputs recombined)."""
    names = list(dict.fromkeys([*k.entities, *k.subjects]))
    rng.shuffle(names)
    for frame, source in sorted(k.frames.items(), key=lambda f: -_sample(k.frame_stats.get(f[0], [0, 0]), rng)):
        for entity in names:
            if k.fits(frame, entity):
                yield fill(frame, entity), source, {"frame": frame, "entity": entity}


REWRITES = ("paraphrase", "deepen", "format")


def _rewrite(templates: list[str]) -> Callable[[Knowledge, random.Random], Iterator[Idea]]:
    def op(k: Knowledge, rng: random.Random) -> Iterator[Idea]:
        for c in k.kept:
            if c.operator in REWRITES:  # a rewrite of a rewrite only stacks boilerplate
                continue
            for t in rng.sample(templates, len(templates)):
                yield t.format(p=c.prompt), c.prompt, {}
    return op


def novel_answers(candidates: list[Candidate]) -> list[bool]:
    """For each candidate: kept, with an answer (normalised) that no earlier kept candidate had."""
    seen: set[str] = set()
    out = []
    for c in candidates:
        key = " ".join((c.response or "").casefold().split())
        out.append(c.kept and key not in seen)
        if c.kept:
            seen.add(key)
    return out


OPERATORS: dict[str, Callable[[Knowledge, random.Random], Iterator[Idea]]] = {
    "follow": follow,
    "probe": probe,
    "related": related,
    "swap": swap,
    "paraphrase": _rewrite(PARAPHRASES),
    "deepen": _rewrite(DEEPEN),
    "format": _rewrite(FORMATS),
}


CRAWL_PRIOR = {"follow": 2, "probe": 2, "related": 2, "ask": 2}
"""Operators that reach new entities start with one imagined success: the method transfers only what
its prompts reach, so the agent explores outward before it rewrites what it has."""


def _sample(stats: list[int], rng: random.Random, prior: int = 1) -> float:
    """Thompson sample of a Beta(prior + kept, 1 + failed) success rate."""
    kept, tried = stats
    return rng.betavariate(prior + kept, 1 + tried - kept)


