"""Self-generation: show a local model a few high-scoring prompts and let it write a new one.

The model is the teacher (default), its base, or any local model directory.
Calls go through the core's cached answerer, so a rerun regenerates nothing.
"""

from __future__ import annotations

import random
import re
from typing import Literal

from pydantic import Field

from tuneshift.kinds import ExpansionState, Expander, ModelSpec, Options, Proposal, Sampling

INSTRUCTION = ("Here are example questions:\n{examples}\n"
               "Write one new question of the same kind, about a different detail. Reply with the question only.")


class SelfGenerateOptions(Options):
    model: Literal["teacher", "base"] | str = "teacher"
    examples: int = Field(4, ge=1, description="example prompts shown per request")
    temperature: float = Field(0.9, gt=0)
    max_new_tokens: int = Field(48, ge=1)


def first_question(text: str) -> str:
    """The first non-empty line, without numbering, bullets or quotes."""
    for line in text.splitlines():
        line = re.sub(r"^\s*(\d+[.)]|[-*•]|question\s*\d*:)\s*", "", line, flags=re.IGNORECASE).strip(" \"'")
        if line:
            return line
    return ""


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
        rng = random.Random(f"{self.context.seed}/{state.round}")
        ranked = sorted(state.kept, key=lambda c: c.score or 0.0, reverse=True)
        pool = [c.prompt for c in ranked[: max(3 * self.options.examples, 8)]] or list(state.seeds)
        requests, parents = [], []
        for _ in range(n):
            shown = rng.sample(pool, min(self.options.examples, len(pool)))
            requests.append(INSTRUCTION.format(examples="\n".join(f"- {p}" for p in shown)))
            parents.append(shown[0])
        sampling = Sampling(max_new_tokens=self.options.max_new_tokens, temperature=self.options.temperature,
                            seed=rng.randrange(2**31))
        answers = self.context.generate(self._model(), requests, sampling)
        out = []
        for answer, parent in zip(answers, parents):
            prompt = first_question(answer.text or "")
            if prompt:
                out.append(Proposal(prompt=prompt, origin=self.name, parent=parent, operator="imitate"))
        return out
