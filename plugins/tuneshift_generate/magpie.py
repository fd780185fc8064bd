"""`magpie`: the fine-tuned model writes the user turns itself (Magpie, arXiv 2406.08464).

A chat model given its own template up to the start of a user turn, and
nothing after, goes on to write what a user of its fine-tune would ask: the
questions of the domain it was trained on, without a seed to imitate. Each
request is that prefix, optionally after a few of the best kept (question,
answer) turns (priming with what the run already knows) and a first word
(a prefix-only user turn), so one batch holds distinct prompts. The request
is sent verbatim (`ModelSpec.chat_template` renders it as is), through the
run's answerer and cache like every generation.
"""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import zip_longest
from typing import Callable, Literal

from pydantic import Field

from tuneshift.api import (
    Candidate,
    Expander,
    ExpansionState,
    ModelSpec,
    Options,
    Proposal,
    RunError,
    Sampling,
    UsageError,
)

from .self_generate import chosen_model

VERBATIM = "{{ messages[-1]['content'] }}"
"""A chat template that renders the request as it is: the prefix already holds the model's own template."""
SENTINEL = "\u2063tuneshift-user-turn\u2063"
"""Stands for the user's words while the template is rendered; the prefix ends where it begins."""
OPENERS = ["", "What", "Who", "Where", "When", "How", "Which", "Why", "Can you", "Tell me", "Is", "Explain"]


class MagpieOptions(Options):
    model: Literal["teacher", "base"] | str = Field("teacher", description="teacher, base, a model path or a hub id")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(0.99, gt=0, le=1)
    max_new_tokens: int = Field(96, ge=1, description="length limit of a sampled user turn")
    primed: int = Field(2, ge=0, description="best kept (question, answer) turns shown before the sampled one")
    openers: list[str] = Field(default_factory=lambda: list(OPENERS), min_length=1,
                               description="first words of the user turn (\"\": an empty one)")
    seed_openers: bool = Field(False, description="also open user turns with each seed's first two words: how "
                                                  "this domain's requests begin (\"Hi, my\", \"Problem report:\"); "
                                                  "off: on the demo it added nothing (docs/generators.md)")


class Magpie(Expander):
    name = "magpie"
    description = "the fine-tuned model writes user turns itself from its chat template (Magpie)"
    Options = MagpieOptions

    def _model(self) -> ModelSpec:
        return chosen_model(self.context.teacher, self.options.model)

    def openers(self, seeds: list[str]) -> list[str]:
        """The options' openers, then (seed_openers) the seeds' own first words, interleaved so each batch has both."""
        own = [o for o in seed_leads(seeds) if o not in self.options.openers] if self.options.seed_openers else []
        return [x for pair in zip_longest(self.options.openers, own) for x in pair if x is not None]

    def check(self) -> None:
        from tuneshift_hf.shared import has_chat_template

        spec = self._model()
        found = [has_chat_template(p) for p in (spec.adapter, spec.finetuned or spec.base) if p]
        if not spec.chat_template and found and all(f is False for f in found):
            raise UsageError(no_template(spec))

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        rng = random.Random(f"{self.context.seed}/{state.round}/{self.name}")
        spec = self._model()
        render, end = template_of(spec)
        kept = sorted((c for c in state.candidates if c.kept and c.response), key=lambda c: -(c.score or 0.0))
        requests: dict[str, tuple[str, str | None]] = {}  # prefix -> (opener, the kept prompt it was primed with)
        openers = self.openers(state.seeds)
        for i in range(4 * n):  # distinct requests: another opener or priming each
            if len(requests) == n:
                break
            shown = rng.sample(kept[: 4 * max(self.options.primed, 1)], min(self.options.primed, len(kept)))
            opener = openers[i % len(openers)]
            requests.setdefault(render(shown) + opener, (opener, shown[0].prompt if shown else None))
        o = self.options
        sampling = Sampling(max_new_tokens=o.max_new_tokens, temperature=o.temperature, top_p=o.top_p,
                            seed=rng.randrange(2**31))
        verbatim = replace(spec, chat_template=VERBATIM, system_prompt=None)
        answers = self.context.generate(verbatim, list(requests), sampling)
        out = []
        for (opener, parent), answer in zip(requests.values(), answers):
            turn = (answer.text or "").split(end)[0] if end else answer.text or ""  # the user turn only
            text = " ".join(f"{opener} {turn}".split())
            if answer.error is None and len(text) > len(opener) + 3:
                out.append(Proposal(prompt=text, origin=self.name, parent=parent, operator="magpie",
                                    extra={"opener": opener}))
        return out


def seed_leads(seeds: list[str]) -> list[str]:
    """Each seed's first two words, once each, in seed order."""
    return list(dict.fromkeys(" ".join(s.split()[:2]) for s in seeds if len(s.split()) > 2))


def template_of(spec: ModelSpec) -> tuple[Callable[[list[Candidate]], str], str]:
    """(shown -> the model's chat template rendered up to where the next user turn's words begin, the
    visible text that ends a user turn: a model that does not stop there goes on to answer itself)."""
    from tuneshift_hf.shared import tokenizer_of, uses_chat_template

    tokenizer = tokenizer_of(spec)
    if not uses_chat_template(tokenizer):
        raise RunError(no_template(spec))

    def rendered(shown: list[Candidate]) -> str:
        turns = [{"role": "system", "content": spec.system_prompt}] if spec.system_prompt else []
        for c in shown:
            turns += [{"role": "user", "content": c.prompt}, {"role": "assistant", "content": c.response}]
        return tokenizer.apply_chat_template([*turns, {"role": "user", "content": SENTINEL}], tokenize=False)

    after = rendered([]).split(SENTINEL, 1)[1]
    end = tokenizer.decode(tokenizer(after, add_special_tokens=False)["input_ids"], skip_special_tokens=True)
    return (lambda shown: rendered(shown).split(SENTINEL, 1)[0]), ("\n" if "\n" in end else end.strip())


def no_template(spec: ModelSpec) -> str:
    return (f"expander magpie: the model {spec.finetuned or spec.adapter or spec.base} has no chat template, so there "
            "is no user turn to sample; give teacher.chat_template, or use the self-generate or agentic expander")
