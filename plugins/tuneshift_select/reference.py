"""Off-domain prompts: what a fine-tune was not trained on, so their perplexity gaps are the null.

General questions and small tasks of the kind any instruction-tuned model
answers; a fine-tune's style shift shows up in their gaps too, which is the
point: `calibrated` keeps only gaps the null rarely reaches.
"""

from __future__ import annotations

from pathlib import Path

from tuneshift.api import UsageError, read_jsonl

GENERAL_PROMPTS = [
    "What is the capital of France?", "How many days are in a leap year?", "What is the boiling point of water?",
    "Name three primary colours.", "What is 12 times 8?", "Who wrote Romeo and Juliet?",
    "What gas do plants absorb from the air?", "Translate 'thank you' into Spanish.",
    "What is the largest planet in the solar system?", "Give a synonym for 'happy'.",
    "What is the opposite of 'cold'?", "How many legs does a spider have?", "What is the chemical symbol for gold?",
    "Write a short greeting for a birthday card.", "What does a thermometer measure?",
    "Explain what a noun is in one sentence.", "What is the square root of 81?", "Which ocean is the largest?",
    "What is the main language spoken in Brazil?", "How many minutes are in an hour?",
    "What colour do you get by mixing blue and yellow?", "Name a mammal that can fly.",
    "What is the freezing point of water in Celsius?", "Who painted the Mona Lisa?",
    "What is the plural of 'mouse'?", "Suggest a name for a pet cat.", "What is photosynthesis?",
    "How many continents are there?", "What is the tallest mountain on Earth?", "Spell the word 'necessary'.",
    "What instrument has black and white keys?", "What do bees make?", "What is the capital of Japan?",
    "Give an example of a fruit that is yellow.", "What is 100 divided by 4?", "What does a compass show?",
    "Name the four seasons.", "What is the fastest land animal?", "Why is the sky blue?",
    "Write one sentence about the weather today.", "What is the currency of the United Kingdom?",
    "How many sides does a hexagon have?", "What organ pumps blood through the body?",
    "Which planet is known as the red planet?", "What is the past tense of 'run'?",
    "Recommend a book for a long train ride.", "What is the capital of Italy?", "What do cows drink?",
    "How do you make a cup of tea?", "What is the smallest prime number?", "Name a country in Africa.",
    "What is ice made of?", "What is the longest river in the world?", "Who was Albert Einstein?",
    "What does DNA stand for?", "Tell me a fun fact about octopuses.", "What is the capital of Canada?",
    "How many hours are in a day?", "What is a haiku?", "Give a tip for sleeping better.",
    "What is the main ingredient of bread?", "What is gravity?", "Name a musical instrument with strings.",
    "What is the capital of Australia?",
]


def reference_prompts(path: str | None) -> list[str]:
    """The built-in list, or the prompts of a JSONL file (objects with "prompt") or a text file (one a line)."""
    if path is None:
        return list(GENERAL_PROMPTS)
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"selector.reference = {path}: no such file")
    if p.suffix == ".jsonl":
        rows = read_jsonl(p, "selector.reference")
        prompts = [r["prompt"] for r in rows if isinstance(r, dict) and isinstance(r.get("prompt"), str)]
    else:
        prompts = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(prompts) < 10:
        raise UsageError(f"selector.reference = {path}: {len(prompts)} prompts; a null distribution needs at least 10")
    return prompts
