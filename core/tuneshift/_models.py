"""One place that says which models a run uses and builds the Context every implementation gets.

run, score, train, verify, serve and the demo all build their models and
contexts here, so the teacher is always the same (base, adapter or fine-tune)
and every Context service is present: in a run they go through the run's
fingerprint cache; in a command without a run directory they call the chosen
implementation directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from tuneshift._errors import UsageError
from tuneshift._hub import local_model
from tuneshift.kinds import Answer, Context, Implementation, ModelSpec, Sampling, Score


@dataclass(frozen=True)
class Models:
    """The run's teacher (fine-tuned: base + adapter, or a full fine-tune), its target before training, and
    the model that rephrases kept questions (`augment.model`), when one is named."""

    teacher: ModelSpec
    target: ModelSpec | None
    paraphraser: ModelSpec | None = None

    @classmethod
    def of(cls, cfg: Any) -> "Models":
        """From a validated config (its [teacher] and [target] sections); hub ids become their snapshot
        folders in the Hugging Face cache, or a UsageError before any work."""
        t = cfg.teacher
        def local(key: str, ref: str | None) -> str | None:
            return ref and local_model(ref, f"config: {key} =")

        teacher = ModelSpec(base=local("teacher.base", t.base), adapter=local("teacher.adapter", t.adapter),
                            finetuned=local("teacher.finetuned", t.finetuned), trust_remote_code=t.trust_remote_code,
                            chat_template=t.chat_template, system_prompt=t.system_prompt, quantization=t.quantization,
                            **t.loading())
        target = (ModelSpec(base=local("target.model", cfg.target.model),
                            trust_remote_code=cfg.target.trust_remote_code, **cfg.target.loading())
                  if cfg.target is not None else None)
        augment = getattr(cfg, "augment", None)
        named = augment.model if augment is not None and augment.enabled else None
        return cls(teacher, target, paraphraser_of(named, teacher, target))

    def trained(self, adapter: str | Path) -> ModelSpec:
        """The target with a trained adapter."""
        assert self.target is not None, "a run without [target] has no trained target"
        return replace(self.target, adapter=str(adapter))

    def paths(self) -> dict[str, str | None]:
        """Every model file or folder by its config key: what the run must never overwrite."""
        paths = {"teacher.base": self.teacher.base, "teacher.adapter": self.teacher.adapter,
                 "teacher.finetuned": self.teacher.finetuned, "target.model": self.target and self.target.base}
        if self.paraphraser is not None and self.paraphraser.base not in paths.values():  # a model of its own
            paths["augment.model"] = self.paraphraser.base
        return paths


def paraphraser_of(model: str | None, teacher: ModelSpec, target: ModelSpec | None) -> ModelSpec | None:
    """The model `augment.model` names: the teacher, its base, the run's target before training, or a path
    or hub id of its own (which `paths()` then lists, so it is checked, fingerprinted and never overwritten)."""
    if model is None:
        return None
    if model in ("teacher", "base"):
        return teacher if model == "teacher" else teacher.base_only()
    if model == "target":
        if target is None:
            raise UsageError('config: augment.model = "target", but the run has no [target]')
        return target
    return ModelSpec(base=local_model(model, "config: augment.model ="))


def build_context(state: Any, models: Models, seed: int, work_dir: str | Path, *,
                  progress: Callable[[int], None] | None = None,
                  metrics: Callable[[int, dict[str, float]], None] | None = None,
                  generate: Callable[[ModelSpec, list[str], Sampling], list[Answer]] | None = None,
                  score: Callable[[ModelSpec, list[tuple[str, str]]], list[Score]] | None = None,
                  cached: Callable[..., list[Any]] | None = None) -> Context:
    """A Context with every service: the given ones (a run's, cached), else direct calls of the
    implementations `state` (the CLI's registry and --plugin choices) picks, made on first use."""
    made: dict[str, Implementation] = {}
    context: Context

    def chosen(kind: str) -> Any:
        if kind not in made:
            made[kind] = state.build(kind, context)
        return made[kind]

    def make(kind: str, name: str, **options: Any) -> Implementation:
        cls = state.named(kind, name)
        return cls(cls.Options(**options), context)

    context = Context(
        teacher=models.teacher, target=models.target, seed=seed, work_dir=str(work_dir),
        progress=progress or (lambda advance: None),
        metrics=metrics or (lambda step, values: None),
        generate=generate or (lambda model, prompts, sampling: chosen("answerer").answer(model, prompts, sampling)),
        score=score or (lambda model, pairs: chosen("scorer").score(model, pairs)),
        cached=cached or (lambda namespace, inputs, compute, batch_size=8: uncached(inputs, compute, batch_size)),
        make=make)
    return context


def uncached(inputs: list[Any], compute: Callable[[list[Any]], list[Any]], batch_size: int) -> list[Any]:
    """`cached` without a run directory: compute every batch."""
    out: list[Any] = []
    for start in range(0, len(inputs), batch_size):
        out.extend(compute(inputs[start:start + batch_size]))
    return out
