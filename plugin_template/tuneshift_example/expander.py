"""A custom generator without a model: rephrase kept prompts with fixed templates.

Deterministic and free, so it is a cheap way to widen a dataset around what
the selector already kept (or around the seeds before anything was kept).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from tuneshift.api import Candidate, Expander, ExpansionState, Options, Proposal

DEFAULT_TEMPLATES = ("In other words, {prompt}", "Explain briefly: {prompt}", "{prompt} Answer in one sentence.")


class ExampleExpanderOptions(Options):
    templates: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPLATES), min_length=1,
                                 description="rephrasings; each must contain {prompt}")

    @field_validator("templates")
    @classmethod
    def _each_has_prompt(cls, templates: list[str]) -> list[str]:
        for template in templates:
            if "{prompt}" not in template:
                raise ValueError(f"template {template!r} has no {{prompt}} placeholder")
            try:
                template.format(prompt="")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"template {template!r} must use only {{prompt}}: {exc}") from None
        return templates


def _ranked(kept: list[Candidate]) -> list[str]:
    """Kept prompts, best score first (ties by id), so a small `n` rephrases the best ones."""
    order = sorted(kept, key=lambda c: (-(c.score if c.score is not None else float("-inf")), c.id))
    return [c.prompt for c in order]


class ExampleExpander(Expander):
    name = "example-expander"
    description = "rephrase kept prompts (else the seeds) with fixed templates; no model"
    Options = ExampleExpanderOptions

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        parents = _ranked(state.kept) or list(state.seeds)
        seen = {c.prompt.strip() for c in state.candidates}
        out: list[Proposal] = []
        for template in self.options.templates:
            for parent in parents:
                prompt = template.format(prompt=parent.strip()).strip()
                if prompt in seen:
                    continue
                seen.add(prompt)
                out.append(Proposal(prompt=prompt, origin=self.name, parent=parent, operator="template"))
                if len(out) >= n:
                    return out
        return out
