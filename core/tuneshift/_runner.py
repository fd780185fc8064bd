"""Set up one run: config, plugins, implementations, the call cache, provenance.

`Run` is what every stage receives. Model calls go through `generate` and
`score_pairs`, which consult the fingerprint cache first, so a rerun (or a
resumed one) pays only for work not yet done.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import tomli_w
from pydantic import ValidationError

from tuneshift import __version__
from tuneshift import _config as config
from tuneshift._cache import Cache, fingerprint, model_identity
from tuneshift._errors import UsageError
from tuneshift._inputs import load_eval, load_seeds
from tuneshift._models import Models, build_context
from tuneshift._rundir import RunDir, atomic_write_text, read_json, write_json
from tuneshift._stages import STAGES
from tuneshift.kinds import KINDS, Answer, Candidate, Context, Implementation, ModelSpec, Sampling, Score

ROUND_KEYS = (("run", "rounds"), ("run", "target_size"), ("run", "patience"), ("run", "max_candidates"),
              ("run", "max_teacher_calls"), ("run", "max_seconds"))
"""How far the rounds go: a rerun may extend or shrink a run (training then follows the dataset)."""
FREE_KEYS = ROUND_KEYS + tuple(free for stage in STAGES for free in stage.free)
"""Keys that may change between a run and its resumption without invalidating the work done."""


def may_change() -> str:
    """The free keys as a user writes them: "run.rounds, ..., eval.path and [verify]"."""
    names = [f"[{s}]" if k is None else f"{s}.{k}" for s, k in FREE_KEYS]
    return ", ".join(names[:-1]) + " and " + names[-1]


def is_gguf(path: Path) -> bool:
    """Whether a model file starts with the GGUF magic bytes (the one file format a model may have)."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"GGUF"
    except OSError:
        return False


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "pluggy", "litellm", "sentence-transformers", "faiss-cpu"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _drop_none(value: Any) -> Any:
    """TOML has no null: leave unset keys out of the snapshot."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def instantiate(state: Any, raw: dict[str, Any], kind: str, context: Context) -> Implementation:
    """The implementation chosen for `kind` (--plugin, the config's `use`, the default), built with its
    validated options; options meant for the implementation --plugin replaced are set aside with a warning."""
    use, options = config.kind_section(raw, kind)
    cls = state.implementation(kind, use)
    options, dropped = state.fitting(kind, cls, use, options)
    if dropped:
        warnings.warn(f"[{kind}] options {', '.join(dropped)} are for {state.meant(kind, use)}, not {cls.name}: "
                      "ignored", stacklevel=2)
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as exc:
        raise UsageError(f"config: {config.describe(exc, kind)} (for plugin {cls.name})") from None
    return cls(opts, context)


class Run:
    """One run of the pipeline: its config, models, implementations, directory and cached model calls."""

    def __init__(self, config_path: str | Path, out_dir: str | Path, overrides: list[str], state: Any) -> None:
        registry = state.registry
        self.raw = config.load(config_path, overrides)
        self.cfg = config.validate_core(self.raw)
        self.models = Models.of(self.cfg)
        self._check_paths()
        self.seeds = load_seeds(self.cfg.seeds.path, self.cfg.seeds.prompts)
        if self.cfg.run.target_size is not None and self.cfg.run.target_size < len(self.seeds):
            raise UsageError(f"config: run.target_size ({self.cfg.run.target_size}) is smaller than the "
                             f"number of seeds ({len(self.seeds)})")
        self.registry = registry
        self.hook = registry.observers
        self.dir = RunDir(out_dir)
        self.teacher, self.target = self.models.teacher, self.models.target
        self.paraphraser = self.models.paraphraser
        self.greedy = Sampling(max_new_tokens=self.cfg.run.max_new_tokens, seed=self.cfg.run.seed)
        self.context = build_context(state, self.models, self.cfg.run.seed, self.dir.state / "plugins",
                                     progress=lambda n: self.hook.on_progress(stage=self.current_stage, advance=n),
                                     metrics=lambda step, values: self.hook.on_metrics(
                                         stage=self.current_stage, step=step, metrics=values),
                                     generate=lambda m, p, s: self.generate(m, p, s, stage="expand"),
                                     score=lambda m, pairs: self.score_pairs(m, pairs, stage="select"),
                                     cached=lambda ns, xs, fn, batch_size=8: self.cache.map(
                                         ["plugin", ns], xs, fn, batch_size, self.progress("expand")))
        kinds = [k for k in KINDS if k != "trainer" or self.cfg.target is not None]  # State checked --plugin
        self.impl: dict[str, Implementation] = {k: instantiate(state, self.raw, k, self.context)
                                                for k in kinds}
        for impl in self.impl.values():
            impl.check()
        self.candidates: list[Candidate] = []
        self.augmented: list[dict[str, Any]] = []  # the augment stage's pairs (docs/generators.md)
        self.current_stage = ""  # what implementations' progress reports count towards
        self.timings: dict[str, float] = {}
        self.cache: Cache | None = None

    def _check_paths(self) -> None:
        t = self.cfg.teacher
        for key, value in self.models.paths().items():
            if value and not Path(value).exists():
                raise UsageError(f"config: {key} = {value}: no such file or directory")
            if value and key != "teacher.adapter" and Path(value).is_file() and not is_gguf(Path(value)):
                raise UsageError(f"config: {key} = {value}: not a GGUF file (bad magic bytes); "
                                 "give a model directory or a .gguf file")
        adapter = self.models.teacher.adapter  # a hub id's snapshot folder
        if adapter and not (Path(adapter) / "adapter_config.json").is_file():
            raise UsageError(f"config: teacher.adapter = {t.adapter}: no adapter_config.json "
                             "(not a PEFT adapter directory)")
        teacher, target = self.models.teacher, self.models.target
        answering = [("teacher.finetuned", teacher.finetuned) if teacher.finetuned else ("teacher.base", teacher.base),
                     ("target.model", target.base if target else None)]  # the models run.max_new_tokens is for
        for key, value in answering:
            limit = config.context_length(value) if value else None
            if limit is not None and self.cfg.run.max_new_tokens >= limit:
                raise UsageError(f"config: run.max_new_tokens = {self.cfg.run.max_new_tokens} leaves no room for a "
                                 f"prompt in the context of {key} = {value} ({limit} tokens); lower it")
        if self.cfg.eval.path:
            load_eval(self.cfg.eval.path)  # read now, not after training

    # -- lifetime -------------------------------------------------------------

    def open(self) -> "Run":
        self.dir.open()
        self._check_same_job()
        self.cache = Cache(self.dir.cache_db)
        atomic_write_text(self.dir.config_snapshot, "# resolved config, secrets redacted\n" +
                          tomli_w.dumps(_drop_none(config.redact(self.raw))))
        timings = self.dir.state / "timings.json"
        self.timings = read_json(timings) if timings.exists() else {}
        return self

    def close(self) -> None:
        for impl in self.impl.values():
            impl.close()
        if self.cache:
            self.cache.close()
        self.dir.close()

    def _job_parts(self) -> dict[str, str]:
        """What the run's results depend on, each part fingerprinted on its own so a change can be named:
        the config (less the keys that may change), the plugins, the seeds' content, the models' files."""
        free_sections = {section for section, key in FREE_KEYS if key is None}
        raw = {s: (dict(v) if isinstance(v, dict) else v) for s, v in self.raw.items() if s not in free_sections}
        for section, key in FREE_KEYS:
            if key is not None and isinstance(raw.get(section), dict):
                raw[section].pop(key, None)
        chosen = {k: impl.identity() for k, impl in self.impl.items()}
        parts = {"config or plugin choice": fingerprint(config.redact(raw), chosen),
                 "seeds": fingerprint(self.seeds)}
        parts.update({f"{key} files": fingerprint(model_identity(path))
                      for key, path in self.models.paths().items() if path})
        return parts

    def _check_same_job(self) -> None:
        """A directory resumes only the run it holds: same config, plugins, seeds and model files."""
        marker = self.dir.state / "job.json"
        parts = self._job_parts()
        if marker.exists():
            saved = read_json(marker)
            if not isinstance(saved, dict):
                raise UsageError(f"state file {marker}: not a JSON object; remove the directory or use a new --out")
            before = saved.get("parts") or {"config or plugin choice": saved.get("fingerprint")}
            changed = [name for name, value in before.items() if parts.get(name) != value]
            changed += [name for name in parts if name not in before and "parts" in saved]
            if changed:
                what = ", ".join(("another " if n.startswith("config") else "other ") + n for n in changed)
                raise UsageError(f"output {self.dir.path}: holds a run of {what}; use a new --out "
                                 f"(only {may_change()} may change)")
        write_json(marker, {"fingerprint": fingerprint(parts), "parts": parts})

    def trained_target(self) -> ModelSpec | None:
        """The target with the run's adapter, once one is trained."""
        if self.target is None or not self.dir.adapter.is_dir():
            return None
        return self.models.trained(self.dir.adapter)

    # -- events ---------------------------------------------------------------

    def progress(self, stage: str) -> Callable[[int], None]:
        return lambda advance: self.hook.on_progress(stage=stage, advance=advance)

    def record_time(self, key: str, seconds: float) -> None:
        self.timings[key] = round(self.timings.get(key, 0.0) + seconds, 3)
        write_json(self.dir.state / "timings.json", self.timings)

    # -- cached model calls ---------------------------------------------------

    def _namespace(self, kind: str, model: ModelSpec, extra: Any = None) -> list[Any]:
        impl = self.impl[kind]
        # how it is asked and loaded changes its outputs: in the key when set (unset keeps older runs' keys)
        asked = [model.chat_template, model.system_prompt] if model.chat_template or model.system_prompt else []
        loading = {k: getattr(model, k) for k in ("dtype", "quantization") if getattr(model, k)}
        loaded = [loading] if loading else []
        return [kind, impl.identity(), model_identity(model.base, model.adapter, model.finetuned), extra, *asked, *loaded]

    def generate(self, model: ModelSpec, prompts: list[str], sampling: Sampling, stage: str) -> list[Answer]:
        answerer = self.impl["answerer"]
        asked = {k: v for k, v in asdict(sampling).items() if k != "stop" or v}  # unset keeps older runs' keys
        namespace = self._namespace("answerer", model, asked)
        rows = self.cache.map(namespace, prompts,
                              lambda batch: [asdict(a) for a in answerer.answer(model, batch, sampling)],
                              self.cfg.run.batch_size, self.progress(stage))
        return [Answer(**r) for r in rows]

    def score_pairs(self, model: ModelSpec, pairs: list[tuple[str, str]], stage: str) -> list[Score]:
        scorer = self.impl["scorer"]
        rows = self.cache.map(self._namespace("scorer", model), [list(p) for p in pairs],
                              lambda batch: [asdict(s) for s in scorer.score(model, [tuple(p) for p in batch])],
                              self.cfg.run.batch_size, self.progress(stage))
        return [Score(**r) for r in rows]

    # -- provenance -----------------------------------------------------------

    def provenance(self, started: float, status: str, counts: dict[str, Any],
                   rounds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        plugins = {}
        for kind, impl in self.impl.items():
            entry = self.registry.find(impl.name)
            plugins[kind] = {"name": entry.name, "distribution": entry.distribution, "version": entry.version}
        return {
            "status": status,
            "command": sys.argv,
            "tuneshift": __version__,
            "versions": library_versions(),
            "plugins": plugins,
            "identities": config.redact({kind: impl.identity() for kind, impl in self.impl.items()}),  # as resolved here
            "config": config.redact(self.raw),
            "seeds": {"run.seed": self.cfg.run.seed},
            "timings": self.timings,
            "counts": counts,
            "rounds": rounds or [],
            "cache": {"hits": self.cache.hits if self.cache else 0, "misses": self.cache.misses if self.cache else 0},
            "wall_seconds": round(time.time() - started, 3),
        }
