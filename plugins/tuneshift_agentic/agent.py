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

from pydantic import Field, model_validator

from tuneshift.api import Expander, ExpansionState, Options, Proposal

from .asking import Asker, ask
from .operators import CRAWL_PRIOR, OPERATORS, Idea, Knowledge, _sample, novel_answers

ASK = "ask"
"""The model-driven operator (asking.py): only with a model, so the agent works without one."""


class AgenticOptions(Options):
    operators: list[str] | None = Field(None, description="the operators to use (default: every rule-based one, "
                                                          "and ask when a model is given)")
    model: str | None = Field(None, description="the ask operator's model: teacher, base, a model path or hub id, "
                                                "or a litellm model with api_base (none: rule-based operators only)")
    api_base: str | None = Field(None, description="an OpenAI-compatible server for the ask operator's litellm model")
    api_key_env: str | None = Field(None, description="name of the environment variable holding its key")
    ask_shown: int = Field(4, ge=1, description="kept (question, answer) pairs shown per request")
    ask_per_request: int = Field(6, ge=1, description="questions asked for per request")
    ask_temperature: float = Field(0.7, ge=0)
    ask_max_new_tokens: int = Field(256, ge=1)
    timeout: float = Field(60.0, gt=0, description="seconds per litellm request")
    retries: int = Field(2, ge=0, description="litellm retries of a failed request")

    def chosen(self) -> list[str]:
        """The operators in use: those given, else every rule-based one and ask when a model is given."""
        return self.operators if self.operators is not None else list(OPERATORS) + ([ASK] if self.model else [])

    @model_validator(mode="after")
    def _known(self) -> "AgenticOptions":
        known = [*OPERATORS, ASK]
        unknown = sorted(set(self.chosen()) - set(known))
        if unknown or not self.chosen():
            raise ValueError(f"unknown operators {unknown}; known: {', '.join(known)}")
        if ASK in self.chosen() and not self.model:
            raise ValueError("operator ask needs a model: set expander.model (teacher, base, a path, or a litellm "
                             "model with expander.api_base)")
        return self


class Agentic(Expander):
    name = "agentic"
    description = "plan-act-observe over operators (follow entities, relations, swap, rewrite, ask a model) with a bandit"
    Options = AgenticOptions

    def check(self) -> None:
        if ASK in self.options.chosen():
            Asker(self).check()

    def operator_stats(self, state: ExpansionState) -> dict[str, list[int]]:
        """[useful, tried] of this expander's past proposals per operator (duplicates count as tried).

        Useful means kept with an answer no earlier kept prompt got: rewording a kept question is
        kept again but teaches nothing new, and must not win the bandit from the crawl."""
        stats = {op: [0, 0] for op in self.options.chosen()}
        for c, new in zip(state.candidates, novel_answers(state.candidates)):
            if c.origin == self.name and c.operator in stats:
                stats[c.operator][0] += new
                stats[c.operator][1] += 1
        return stats

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        rng = random.Random(f"{self.context.seed}/{state.round}/{self.name}")
        knowledge = Knowledge.from_candidates(state.seeds, state.candidates)
        stats = self.operator_stats(state)
        streams: dict[str, Iterator[Idea]] = {op: OPERATORS[op](knowledge, rng) for op in self.options.chosen()
                                              if op != ASK}
        if ASK in self.options.chosen():
            seed = rng.randrange(2**31)
            o = self.options
            streams[ASK] = ask(knowledge, rng, lambda requests: Asker(self)(requests, seed), n, o.ask_shown,
                               o.ask_per_request)
        taken: set[str] = set(knowledge.asked)
        out: list[Proposal] = []
        while len(out) < n and streams:
            op = max(streams, key=lambda name: _sample(stats[name], rng, CRAWL_PRIOR.get(name, 1)))
            idea = next((i for i in streams[op] if i[0].casefold() not in taken), None)
            if idea is None:
                del streams[op]  # this operator has nothing new left
                continue
            prompt, parent, detail = idea
            taken.add(prompt.casefold())
            out.append(Proposal(prompt=prompt, origin=self.name, parent=parent, operator=op, extra=detail))
        return out
