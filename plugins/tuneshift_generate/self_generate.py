"""Self-generation: the `litellm-paraphrase` job done by a local model (the teacher, its base, or a path).

Calls go through the core's cached answerer, so a rerun regenerates nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneshift.api import (
    Expander,
    ExpansionState,
    ModelSpec,
    Options,
    Proposal,
    Sampling,
    UsageError,
    build_request,
    context_length,
    local_model,
    parse_prompts,
)


def chosen_model(teacher: ModelSpec, choice: str) -> ModelSpec:
    """An expander's `model` option as a spec: the teacher, its base alone, or a model path or hub id."""
    if choice == "teacher":
        return teacher
    if choice == "base":
        return teacher.base_only()
    return ModelSpec(base=local_model(choice, "config: expander.model ="))


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
        return chosen_model(self.context.teacher, self.options.model)

    def check(self) -> None:
        """A model path exists and is a model (a directory with config.json, or a GGUF file), and
        max_new_tokens leaves room in its context for the request."""
        model = self.options.model
        if model not in ("teacher", "base"):
            self._check_model_path(model)
        spec = self._model()
        path = spec.finetuned or spec.base
        limit = context_length(path)
        if limit is not None and self.options.max_new_tokens >= limit:
            raise UsageError(f"config: expander.max_new_tokens = {self.options.max_new_tokens} leaves no room for "
                             f"the request in the context of the expander's model {path} ({limit} tokens); lower it")

    @staticmethod
    def _check_model_path(model: str) -> None:
        key = f"config: expander.model = {model}"
        if not model.strip():
            raise UsageError("config: expander.model: empty; give teacher, base or a model directory")
        if "\0" in model:
            raise UsageError("config: expander.model: a path cannot contain a NUL character")
        p = Path(local_model(model, "config: expander.model ="))  # a hub id: its snapshot folder
        if not p.exists():
            raise UsageError(f"{key}: no such file or directory (give teacher, base, a model directory or a hub id)")
        if p.is_file():
            try:
                with p.open("rb") as fh:
                    magic = fh.read(4)
            except OSError as exc:
                raise UsageError(f"{key}: cannot read it ({exc.strerror or exc})") from None
            if magic != b"GGUF":
                raise UsageError(f"{key}: not a GGUF file (bad magic bytes); give teacher, base, a model "
                                 "directory or a .gguf file")
        elif not (p / "config.json").is_file():
            raise UsageError(f"{key}: no config.json (not a model directory); give teacher, base or a model "
                             "directory")

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
