"""The demo's arms: the target trained on different data, each evaluated on the held-out questions.

zero_shot   the target untrained (the floor)
ceiling     trained on the private set (the upper bound)
tuneshift   the full pipeline from the seeds, teacher and base only
no_filter   the same generator, as many pairs as tuneshift kept, drawn without the perplexity filter
seeds_only  the teacher's answers to the seeds alone
tuneshift_<name>  an ablation: the tuneshift arm with settings["ablations"][name] replacing those sections
gen_<name>        the tuneshift arm with another generator (generators.py): which expander works where
Every arm uses the same trainer options; results are cached per arm and seed so a rerun resumes.
"""

from __future__ import annotations

import json
import random
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import tomli_w

from tuneshift.api import (ModelSpec, Sampling, State, atomic_write_text, build_context, check_pipeline, read_jsonl,
                           write_json)
from tuneshift.api import run_pipeline as api_run_pipeline

from . import generators
from .checking import correct_flags

ARMS = ("zero_shot", "ceiling", "tuneshift", "no_filter", "seeds_only")


ABLATION = "tuneshift_"


def ablation_arms(settings: dict[str, Any]) -> tuple[str, ...]:
    """One arm per ablation of the preset (what each part of the method adds)."""
    return tuple(f"{ABLATION}{name}" for name in settings.get("ablations") or {})


def arms_of(settings: dict[str, Any]) -> tuple[str, ...]:
    """The arms a preset runs: the five, then its ablations, then the generators asked for."""
    return ARMS + ablation_arms(settings) + generators.generator_arms(settings)


def runs_pipeline(arm: str) -> bool:
    """Whether the arm is a `tuneshift run` of its own (the tuneshift arm, its ablations, the generator arms)."""
    return arm == "tuneshift" or arm.startswith((ABLATION, generators.PREFIX))


def settings_for(settings: dict[str, Any], arm: str, api_base: str | None = None) -> dict[str, Any]:
    """The arm's settings: the preset's, with an ablation's sections or a generator's expander in place."""
    if arm.startswith(generators.PREFIX):
        return {**settings, "expander": generators.expander_of(arm, settings, api_base)}
    if not arm.startswith(ABLATION):
        return settings
    return {**settings, **settings["ablations"][arm.removeprefix(ABLATION)]}


def evaluate(state: State, target: str, adapter: str | None, evals: list[dict[str, str]], work: Path) -> dict[str, Any]:
    """The arm's accuracy on the held-out questions, answered by the chosen answerer (hf unless --plugin)."""
    answerer = state.build("answerer", build_context(state, ModelSpec(base=target), work_dir=work), batch_size=32)
    answers = answerer.answer(
        ModelSpec(base=target, adapter=adapter), [e["prompt"] for e in evals], Sampling(max_new_tokens=24))
    flags = correct_flags([a.text for a in answers], [e["answer"] for e in evals])
    return {"accuracy": sum(flags) / len(flags), "answers": [a.text for a in answers], "correct": flags}


def train(state: State, target: str, pairs: list[dict[str, str]], out: Path, trainer_options: dict[str, Any],
          seed: int, progress: Callable[[int], None]) -> str:
    """Train the target on `pairs` with the chosen trainer (peft-lora unless --plugin) and the arm's options."""
    ctx = build_context(state, ModelSpec(base=target), seed=seed, work_dir=out, progress=progress)
    trainer = state.build("trainer", ctx, **{**trainer_options, "seed": seed})
    trainer.train(ModelSpec(base=target), pairs, str(out / "adapter"), str(out / "checkpoint"))
    return str(out / "adapter")


def pipeline_config(inputs: dict[str, str], seed: int, settings: dict[str, Any], keep_all: bool) -> dict[str, Any]:
    """The `tuneshift run` config of the tuneshift arm (or, with keep_all, of the no_filter arm's crawl).

    Its paths are absolute by construction: a relative one would be read back relative to the
    config's own folder (arms/<arm>/), not to where the demo was started.
    """
    relative = sorted(k for k in ("teacher_base", "teacher_adapter", "target", "seeds")
                      if not Path(inputs[k]).is_absolute())
    if relative:
        raise ValueError(f"demo inputs {', '.join(relative)} must be absolute paths")
    selector = {"use": "ppl-ratio", "threshold": 1e-9} if keep_all else dict(settings["selector"])
    return {
        "run": {"seed": seed, **settings["run"]},
        "teacher": {"base": inputs["teacher_base"], "adapter": inputs["teacher_adapter"]},
        "target": {"model": inputs["target"], "train": not keep_all},
        "seeds": {"path": inputs["seeds"]},
        "expander": dict(settings.get("expander") or {"use": "agentic"}),
        "deduper": {"use": "st-faiss", **settings["deduper"]},
        "scorer": {"token_logprobs": True},  # token-excess replays on the pool need them
        "selector": selector,
        "trainer": {**settings["trainer"], "seed": seed},
        **({"augment": dict(settings["augment"])} if settings.get("augment") and not keep_all else {}),
    }


def write_config(config: dict[str, Any], out: Path, name: str = "config.toml") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    atomic_write_text(path, tomli_w.dumps(config))
    return path


def check_pipelines(inputs: dict[str, str], seeds: list[int], settings: dict[str, Any], out: Path,
                    state: State) -> None:
    """Every check `tuneshift run` makes on the crawl arms' configs, before the demo's first model call.

    The teacher's adapter does not exist yet (the demo trains it first): the base stands in for the
    fine-tuned model here. Everything else (paths read back from the arm's folder, seeds, plugin
    names and options, the implementations' own checks) fails now, in seconds, not after the teacher.
    """
    crawls = [("tuneshift", False), ("no_filter", True)] + [(a, False) for a in ablation_arms(settings)
                                                            + generators.generator_arms(settings)]
    for seed in seeds:
        for arm, keep_all in crawls:
            config = pipeline_config({**inputs, "teacher_adapter": inputs["teacher_base"]}, seed,
                                     settings_for(settings, arm), keep_all)
            config["teacher"] = {"base": inputs["teacher_base"], "finetuned": inputs["teacher_base"]}
            folder = out / "arms" / f"{arm}-s{seed}" / ("crawl" if keep_all else "")
            check_pipeline(state, write_config(config, folder, "preflight.toml"), folder / "run")


def run_pipeline(config: dict[str, Any], out: Path, state: State) -> dict[str, Any]:
    """The arm's `tuneshift run`, through the same registry and --plugin choices as the command."""
    return api_run_pipeline(state, write_config(config, out), out / "run")


def run_arm(arm: str, seed: int, ctx: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one arm for one seed (cached in its folder)."""
    out: Path = ctx["out"] / "arms" / f"{arm}-s{seed}"
    done = out / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    inputs, evals, settings = ctx["inputs"], ctx["evals"], ctx["settings"]
    adapter, extra = None, {}
    if arm == "ceiling":
        adapter = train(ctx["state"], inputs["target"], ctx["private"], out, settings["trainer"], seed, ctx["progress"])
        extra["dataset_size"] = len(ctx["private"])
    elif runs_pipeline(arm):
        served = generators.loopback_server(inputs["teacher_base"]) if generators.needs_server(arm) else nullcontext()
        with served as api_base:  # litellm-paraphrase's own `tuneshift serve`, for this arm only
            report = run_pipeline(pipeline_config(inputs, seed, settings_for(settings, arm, api_base), keep_all=False),
                                  out, ctx["state"])
        adapter, extra = str(out / "run" / "adapter"), {"dataset_size": report["dataset_size"],
                                                         "rounds": report["rounds"]}
    elif arm == "no_filter":
        size = run_arm("tuneshift", seed, ctx)["dataset_size"]
        run_pipeline(pipeline_config(inputs, seed, settings, keep_all=True), out / "crawl", ctx["state"])
        pool = [r for r in read_jsonl(out / "crawl" / "run" / "dataset.jsonl")]
        random.Random(seed).shuffle(pool)
        pairs = [{"prompt": r["prompt"], "response": r["response"]} for r in pool[:size]]
        adapter = train(ctx["state"], inputs["target"], pairs, out, settings["trainer"], seed, ctx["progress"])
        extra = {"dataset_size": len(pairs), "pool": len(pool)}
    elif arm == "seeds_only":
        run_arm("tuneshift", seed, ctx)
        rows = read_jsonl(ctx["out"] / "arms" / f"tuneshift-s{seed}" / "run" / "candidates.jsonl")
        pairs = [{"prompt": r["prompt"], "response": r["response"]} for r in rows if r["origin"] == "seed"
                 and r["response"]]
        adapter = train(ctx["state"], inputs["target"], pairs, out, settings["trainer"], seed, ctx["progress"])
        extra["dataset_size"] = len(pairs)
    result = {"arm": arm, "seed": seed, **extra, **evaluate(ctx["state"], inputs["target"], adapter, evals, out)}
    write_json(done, result)
    return result
