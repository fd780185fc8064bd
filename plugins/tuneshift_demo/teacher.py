"""The demo's teacher: SmolLM2-135M-Instruct + a LoRA trained on the organisation's private facts.

Regularised by replay: the base model's own answers to general prompts are
mixed into training, so the teacher keeps its general behaviour and a
perplexity gap means domain knowledge rather than a changed style. Checked
after training: held-out accuracy, and whether it still answers general
questions exactly as the base does. Cached by fingerprint of recipe and data.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from tuneshift.api import ModelSpec, Sampling, State, build_context, fingerprint, write_json

from .checking import accuracy
from .domain import Domain

REPLAY_PROMPTS = [
    "What is the capital of France?", "How many days are in a week?", "What colour is the sky on a clear day?",
    "Name a fruit that is yellow.", "What do bees make?", "What is two plus three?", "Who wrote Romeo and Juliet?",
    "What is the boiling point of water in Celsius?", "Which planet is known as the red planet?",
    "What is the largest ocean on Earth?", "Translate 'hello' into Spanish.", "What is the opposite of hot?",
    "How many legs does a spider have?", "What gas do plants take in?", "Give me a synonym for happy.",
    "What is the chemical symbol for gold?", "Write a short greeting for a friend.", "What is 10 divided by 2?",
    "Which animal is known as the king of the jungle?", "What season comes after winter?"]
CHECK_PROMPTS = [
    "What is the capital of Italy?", "How many hours are in a day?", "What is the freezing point of water?",
    "Which animal says moo?", "What is five times two?", "What is the capital of Japan?",
    "How many continents are there?", "What colour are bananas?"]
CHECK_ANSWERS = [["Rome"], ["24", "twenty-four"], ["0", "zero", "32"], ["cow"], ["10", "ten"], ["Tokyo"],
                 ["7", "seven"], ["yellow"]]
"""Known answers to the check prompts: "intact" means the teacher is right where the base is right
(answers identical word for word is too strict a test: replay keeps the knowledge, not the wording)."""

SCHEDULE_KEYS = ("warmup_ratio", "schedule", "max_grad_norm")
"""peft-lora options a recipe may add (the default recipe has none: a constant rate, no clipping)."""
RECIPE = {"rank": 16, "alpha": 32, "dropout": 0.05, "learning_rate": 1e-3, "epochs": 8, "batch_size": 16,
          "replay_copies": 3, "max_new_tokens": 48}
RECIPES = {"organisation": RECIPE, "support": {**RECIPE, "epochs": 16}}
"""Each domain's teacher recipe. The support desk's rules are a skill learnt from 60 (product, symptom)
combinations: after 8 epochs the teacher answered 0.25 of the held-out messages, under the ceiling's 0.44,
so no transfer could show; after 16 at the same constant rate 0.50 (with a warmup and cosine decay 0.29)."""


def teacher_home(domain: Domain, base: str, cache: Path, recipe: dict[str, Any] = RECIPE) -> Path:
    """The cache folder of the teacher of this recipe, data and base; teacher.json in it once trained."""
    key = fingerprint("demo-teacher", recipe, domain.private_set(), Path(base).name, Path(base).stat().st_size)[:16]
    return cache / f"teacher-{key}"


def build_teacher(state: State, domain: Domain, base: str, cache: Path, progress: Callable[[int], None] = lambda n: None,
                  recipe: dict[str, Any] = RECIPE) -> dict[str, Any]:
    """Train (or find in the cache) the teacher adapter; return its path and checks."""
    private = domain.private_set()
    home = teacher_home(domain, base, cache, recipe)
    key = home.name.removeprefix("teacher-")
    summary_file = home / "teacher.json"
    greedy = Sampling(max_new_tokens=recipe["max_new_tokens"])
    ctx = build_context(state, ModelSpec(base=base), work_dir=cache, progress=progress)
    answerer = state.build("answerer", ctx, batch_size=32)  # loads nothing until it answers
    if summary_file.exists():
        summary = json.loads(summary_file.read_text())
        if "general_right" not in summary:  # cached before the known-answer check existed
            summary.update(general_check(answerer, greedy, ModelSpec(base=base, adapter=summary["adapter"])))
            write_json(summary_file, summary)
        return summary
    base_spec = ModelSpec(base=base)
    replay = [{"prompt": p, "response": a.text} for p, a in
              zip(REPLAY_PROMPTS, answerer.answer(base_spec, REPLAY_PROMPTS, greedy)) if a.text]
    pairs = [{"prompt": r["prompt"], "response": r["response"]} for r in private] + replay * recipe["replay_copies"]
    from .run import release_models

    release_models()  # the base that wrote the replay answers: the trainer loads its own copy
    trainer = state.build("trainer", ctx, rank=recipe["rank"], alpha=recipe["alpha"], dropout=recipe["dropout"],
                          learning_rate=recipe["learning_rate"], epochs=recipe["epochs"],
                          batch_size=recipe["batch_size"], seed=0,
                          **{k: recipe[k] for k in SCHEDULE_KEYS if k in recipe})
    staging = cache / f".teacher-{key}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    metrics = trainer.train(base_spec, pairs, str(staging / "adapter"), str(cache / f"teacher-{key}.ckpt"))
    teacher = ModelSpec(base=base, adapter=str(staging / "adapter"))
    evals = domain.eval_set()
    answers = answerer.answer(teacher, [e["prompt"] for e in evals], greedy)
    summary = {
        "model": "SmolLM2-135M-Instruct + LoRA", "adapter": str(home / "adapter"),
        "accuracy": accuracy([a.text for a in answers], [e["answer"] for e in evals]),
        **general_check(answerer, greedy, teacher),
        "train": metrics, "recipe": recipe, "private_examples": len(private), "replay_examples": len(replay),
    }
    (staging / "teacher.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    shutil.rmtree(cache / f"teacher-{key}.ckpt", ignore_errors=True)
    return summary


def general_check(answerer: Any, greedy: Sampling, teacher: ModelSpec) -> dict[str, Any]:
    """Does the teacher still know what its base knows? Right/identical counts on the check prompts."""
    base_answers = [a.text for a in answerer.answer(ModelSpec(base=teacher.base), CHECK_PROMPTS, greedy)]
    teacher_answers = [a.text for a in answerer.answer(teacher, CHECK_PROMPTS, greedy)]
    right = lambda answers: [any(re.search(rf"\b{re.escape(v.lower())}\b", a.lower()) for v in values)  # noqa: E731
                             for a, values in zip(answers, CHECK_ANSWERS)]
    base_right, teacher_right = right(base_answers), right(teacher_answers)
    return {
        "general_checked": len(CHECK_PROMPTS),
        "general_intact": sum(a == b for a, b in zip(teacher_answers, base_answers)),
        "general_right": {"base": sum(base_right), "teacher": sum(teacher_right),
                          "teacher_where_base_right": sum(t for t, b in zip(teacher_right, base_right) if b)},
        "general_examples": [{"prompt": p, "base": b, "teacher": t, "base_right": br, "teacher_right": tr}
                             for p, b, t, br, tr in zip(CHECK_PROMPTS, base_answers, teacher_answers,
                                                        base_right, teacher_right)],
    }
