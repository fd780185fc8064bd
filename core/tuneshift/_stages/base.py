"""What a stage sees of a run: the interface `Run` (tuneshift._runner) provides, so stages depend on it and
not on the class (which imports the stage list)."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from tuneshift._rundir import RunDir
from tuneshift.kinds import Answer, Candidate, Implementation, ModelSpec, Sampling, Score


class RunState(Protocol):
    cfg: Any
    """The validated core config (tuneshift._config.CoreConfig)."""
    dir: RunDir
    impl: dict[str, Implementation]
    """The run's implementation of each kind."""
    candidates: list[Candidate]
    """Every candidate of the finished rounds."""
    augmented: list[dict[str, Any]]
    """Pairs the augment stage added: prompt, response, fact (the kept candidate's id), origin."""
    seeds: list[str]
    teacher: ModelSpec
    target: ModelSpec | None
    paraphraser: ModelSpec | None
    """The model that rephrases kept questions for knowledge augmentation (`augment.model`), if any."""
    greedy: Sampling

    def generate(self, model: ModelSpec, prompts: list[str], sampling: Sampling, stage: str) -> list[Answer]: ...

    def score_pairs(self, model: ModelSpec, pairs: list[tuple[str, str]], stage: str) -> list[Score]: ...

    def progress(self, stage: str) -> Callable[[int], None]: ...

    def trained_target(self) -> ModelSpec | None: ...
