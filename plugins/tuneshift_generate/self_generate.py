"""Self-generation: the `litellm-paraphrase` job done by a local model (the teacher, its base, or a path).

Calls go through the core's cached answerer, so a rerun regenerates nothing.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from tuneshift.kinds import ExpansionState, Expander, ModelSpec, Options, Proposal, Sampling

from .fewshot import build_request, parse_prompts


class SelfGenerateOptions(Options):
    model: Literal["teacher", "base"] | str = "teacher"
    prompts_per_request: int = Field(4, ge=1)
    positives: int = Field(4, ge=1, description="best kept prompts shown, with their answers")
    negatives: int = Field(2, ge=0, description="lowest scorers shown as what not to write")
    temperature: float = Field(0.9, gt=0)
    max_new_tokens: int = Field(160, ge=1)


class SelfGenerate(Expander):
    name = "self-generate"
    default = True
    description = "a local model (teacher, base or a path) writes prompts like the best kept ones"
    Options = SelfGenerateOptions

    def _model(self) -> ModelSpec:
        teacher = self.context.teacher
        if self.options.model == "teacher":
            return teacher
        if self.options.model == "base":
            return ModelSpec(base=teacher.base, trust_remote_code=teacher.trust_remote_code)
        return ModelSpec(base=self.options.model)

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        rng = random.Random(f"{self.context.seed}/{state.round}/{self.name}")
        o = self.options
        requests = [build_request(state, o.prompts_per_request, o.positives, o.negatives, rng)
                    for _ in range(-(-n // o.prompts_per_request))]
        sampling = Sampling(max_new_tokens=o.max_new_tokens, temperature=o.temperature, seed=rng.randrange(2**31))
        answers = self.context.generate(self._model(), [r for r, _ in requests], sampling)
        out: list[Proposal] = []
        for (_, parent), answer in zip(requests, answers):
            out += [Proposal(prompt=p, origin=self.name, parent=parent, operator="fewshot")
                    for p in parse_prompts(answer.text or "")]
        return out[:n]
