"""The agentic expander: plan -> act -> observe.

observe: read the last rounds' fates of its own proposals, per operator and per
         question frame, and harvest the entities named in kept answers;
plan:    share the round's budget among operators by Thompson sampling on
         their keep rates (a bandit), so productive operators get more;
act:     run the chosen operators, keep only prompts never asked before, and
         record why each was proposed (operator, parent prompt, frame, entity).
It returns nothing when no operator has anything new: the run then stops.
"""

from __future__ import annotations

import random
from typing import Iterator

from pydantic import Field, field_validator

from tuneshift.api import Expander, ExpansionState, Options, Proposal

from .operators import CRAWL_PRIOR, OPERATORS, Idea, Knowledge, _sample, novel_answers


class AgenticOptions(Options):
    operators: list[str] = Field(default_factory=lambda: list(OPERATORS))

    @field_validator("operators")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(OPERATORS))
        if unknown or not value:
            raise ValueError(f"unknown operators {unknown}; known: {', '.join(OPERATORS)}")
        return value


class Agentic(Expander):
    name = "agentic"
    description = "plan-act-observe over operators (follow entities, relations, swap, rewrite) with a bandit"
    Options = AgenticOptions

    def operator_stats(self, state: ExpansionState) -> dict[str, list[int]]:
        """[useful, tried] of this expander's past proposals per operator (duplicates count as tried).

        Useful means kept with an answer no earlier kept prompt got: rewording a kept question is
        kept again but teaches nothing new, and must not win the bandit from the crawl."""
        stats = {op: [0, 0] for op in self.options.operators}
        for c, new in zip(state.candidates, novel_answers(state.candidates)):
            if c.origin == self.name and c.operator in stats:
                stats[c.operator][0] += new
                stats[c.operator][1] += 1
        return stats

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        rng = random.Random(f"{self.context.seed}/{state.round}/{self.name}")
        knowledge = Knowledge.from_candidates(state.seeds, state.candidates)
        stats = self.operator_stats(state)
        streams: dict[str, Iterator[Idea]] = {op: OPERATORS[op](knowledge, rng) for op in self.options.operators}
        taken: set[str] = set(knowledge.asked)
        out: list[Proposal] = []
        while len(out) < n and streams:
            op = max(streams, key=lambda o: _sample(stats[o], rng, CRAWL_PRIOR.get(o, 1)))
            idea = next((i for i in streams[op] if i[0].casefold() not in taken), None)
            if idea is None:
                del streams[op]  # this operator has nothing new left
                continue
            prompt, parent, detail = idea
            taken.add(prompt.casefold())
            out.append(Proposal(prompt=prompt, origin=self.name, parent=parent, operator=op, extra=detail))
        return out
