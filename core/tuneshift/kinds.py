"""Base classes of every kind of implementation, and the records they exchange.

An implementation is a class with a `name`, the `kind` it belongs to, the
plugin API version it was written for, and an `Options` model that validates
its section of the config. The pipeline talks to implementations only through
the methods below, so any plugin can replace any stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from tuneshift import PLUGIN_API_VERSION

KINDS = ("expander", "answerer", "deduper", "scorer", "selector", "trainer")


class Options(BaseModel):
    """Options of an implementation: its config section less the `use` key. Unknown keys are errors,
    and so is a float that is NaN or infinite (no option means anything by them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- records -----------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """Where a model lives: a base (directory or .gguf), optionally a PEFT adapter or a full fine-tune; and
    how it is asked: a Jinja chat template and a system prompt that override what its files say (None:
    the adapter folder's template, else the base's, else the plain "Question: ... Answer:" format)."""

    base: str
    adapter: str | None = None
    finetuned: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    system_prompt: str | None = None
    dtype: str | None = None
    """Loading controls (None: the implementation's choice): float32 | bfloat16 | float16."""
    device: str | None = None
    """cpu | cuda | cuda:N | mps."""
    device_map: str | None = None
    """"auto": spread a model too large for one device over all of them (accelerate)."""
    quantization: str | None = None
    """4bit | 8bit (bitsandbytes, CUDA): a teacher larger than the GPU's memory in 16 bits."""

    def base_only(self) -> "ModelSpec":
        """The base model alone, asked in its own format, loaded the same way."""
        return replace(self, adapter=None, finetuned=None, chat_template=None, system_prompt=None)


@dataclass(frozen=True)
class Sampling:
    """How to generate: greedy when temperature is 0. `stop`: each answer ends before the first of these
    strings, and an answerer stops generating a row there (a row that runs on to `max_new_tokens` after
    its answer is over costs every step of its batch). An empty string stops nothing: it is dropped here,
    so no answerer has to."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))


@dataclass(frozen=True)
class Answer:
    """One generated answer, or the reason there is none."""

    text: str | None
    error: str | None = None


@dataclass(frozen=True)
class Score:
    """Mean per-token negative log-likelihood (nats) of a response given its prompt, under both models."""

    nll_finetuned: float
    nll_base: float
    n_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    """A proposed prompt and why it was proposed."""

    prompt: str
    origin: str
    parent: str | None = None
    operator: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Duplicate:
    """A prompt repeats `of` (an earlier prompt) with this similarity (1.0 for exact)."""

    of: str
    similarity: float = 1.0


@dataclass(frozen=True)
class Decision:
    """A selector's verdict on one scored candidate."""

    keep: bool
    value: float
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """Merged into the candidate's extra; `train_spans` ([start, end) character spans of the response)
    reaches dataset.jsonl and limits a trainer's loss to those parts of the answer."""


@dataclass
class Candidate:
    """One row of candidates.jsonl: a prompt, its answer, its scores and its fate."""

    id: int
    round: int
    prompt: str
    origin: str
    parent: str | None = None
    operator: str | None = None
    response: str | None = None
    nll_finetuned: float | None = None
    nll_base: float | None = None
    ppl_ratio: float | None = None
    score: float | None = None
    fate: str = "pending"
    reason: str | None = None
    dup_of: str | None = None
    similarity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> bool:
        return self.fate == "kept"


@dataclass(frozen=True)
class ExpansionState:
    """What an expander sees: the seeds and every candidate so far, with its fate."""

    round: int
    seeds: list[str]
    candidates: list[Candidate]

    @property
    def kept(self) -> list[Candidate]:
        return [c for c in self.candidates if c.kept]


@dataclass
class Context:
    """What the core hands every implementation besides its options. The core fills every service
    (tuneshift._models.build_context), so an implementation may call any of them in any command."""

    teacher: ModelSpec
    target: ModelSpec | None
    seed: int
    work_dir: str
    progress: Callable[[int], None] = lambda advance: None
    generate: Callable[[ModelSpec, list[str], Sampling], list[Answer]] | None = None
    score: Callable[[ModelSpec, list[tuple[str, str]]], list[Score]] | None = None
    """score(model, pairs): the run's scorer through its fingerprint cache (a selector's reference set)."""
    cached: Callable[..., list[Any]] | None = None
    """cached(namespace, inputs, compute, batch_size): compute(batch) -> JSON values, only for inputs
    not yet in the run's fingerprint cache; `namespace` must say everything besides the input that
    determines the result (never a secret)."""
    metrics: Callable[[int, dict[str, float]], None] = lambda step, values: None
    """metrics(step, {"loss": ..., "learning_rate": ...}): numbers at one step, for the observers'
    `on_metrics` (experiment trackers); a trainer reports each optimiser step."""
    make: Callable[..., "Implementation"] | None = None
    """make(kind, name, **options): an instance of the installed implementation `name` (say, to wrap it),
    with this context; a blocked or missing one is a UsageError."""


# --- the kinds ---------------------------------------------------------------


class Implementation:
    """Common part of every kind. Subclasses set `name` and override the kind's method."""

    kind: ClassVar[str]
    name: ClassVar[str]
    api_version: ClassVar[int] = PLUGIN_API_VERSION
    default: ClassVar[bool] = False
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options, context: Context) -> None:
        self.options = options
        self.context = context

    def identity(self) -> dict[str, Any]:
        """What, besides inputs, determines this implementation's outputs (used in cache keys)."""
        return {"name": self.name, "options": self.options.model_dump(mode="json")}

    def check(self) -> None:
        """Cheap checks of the inputs (model files, settings), raising UsageError.

        Called before the run directory is touched, so a bad input leaves nothing behind; load no
        model here: a resumed run may need none."""

    def release(self) -> None:
        """Free the models it holds in memory; it may be called again, and then loads them anew. The core
        calls it between stages, so a stage's models are gone before the next loads its own."""

    def close(self) -> None:
        """Release models and connections."""


class Expander(Implementation):
    kind = "expander"

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        """Propose up to `n` new prompts for round `state.round`."""
        raise NotImplementedError


class Answerer(Implementation):
    kind = "answerer"

    def answer(self, model: ModelSpec, prompts: list[str], sampling: Sampling) -> list[Answer]:
        """Answer each prompt with `model`; one `Answer` per prompt, in order, each cut before the first of
        `sampling.stop`."""
        raise NotImplementedError


class Deduper(Implementation):
    kind = "deduper"

    def find_duplicates(self, prompts: list[str], earlier: list[str]) -> list[Duplicate | None]:
        """For each prompt, the earlier prompt (or earlier one in `prompts`) it repeats, or None."""
        raise NotImplementedError

    def diversity(self, prompts: list[str]) -> dict[str, float]:
        """Optional diversity measures of a set of prompts (an embedding deduper reports cosine distance)."""
        return {}

    def embed(self, texts: list[str]) -> list[list[float]] | None:
        """Optional: one embedding per text (verification's answer similarity and regions), or None
        when this deduper has no embeddings."""
        return None


class Scorer(Implementation):
    kind = "scorer"

    def score(self, model: ModelSpec, pairs: list[tuple[str, str]]) -> list[Score]:
        """Score each (prompt, response) under the fine-tuned model and its base."""
        raise NotImplementedError


class Selector(Implementation):
    kind = "selector"

    def decide(self, scored: list[Candidate], kept: list[Candidate]) -> list[Decision]:
        """Keep or drop each newly scored candidate; `kept` holds what earlier rounds kept."""
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """What the selection learnt (a calibrated threshold, an estimated false-keep rate) for report.json."""
        return {}


class Trainer(Implementation):
    kind = "trainer"

    def train(self, model: ModelSpec, pairs: list[dict[str, Any]], out_dir: str, checkpoint_dir: str) -> dict[str, Any]:
        """Train `model` on the pairs (prompt, response), write a PEFT adapter to `out_dir`, return metrics.

        Resume from `checkpoint_dir` when it holds a checkpoint of the same job.
        """
        raise NotImplementedError


KIND_CLASSES: dict[str, type[Implementation]] = {
    cls.kind: cls for cls in (Expander, Answerer, Deduper, Scorer, Selector, Trainer)
}
