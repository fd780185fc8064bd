"""The trained adapter's model card (adapter/README.md): what a hub page or a colleague needs to know.

peft writes a placeholder card with an absolute local base path; a run
replaces it once its report is final, with the base model as a user elsewhere
loads it, what the adapter was distilled from, the dataset and how it was
selected, the evaluation and verification numbers, and how to prompt it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneshift import __version__
from tuneshift._hub import hub_id
from tuneshift._rundir import atomic_write_text
from tuneshift.kinds import ModelSpec


def portable(path: str | None) -> str | None:
    """How a model is named off this machine: its hub id when it came from the hub, else its file name."""
    if not path:
        return None
    return hub_id(path) or Path(path).name


def card(base: str, teacher: ModelSpec, report: dict[str, Any], selector: dict[str, Any]) -> str:
    """The card's text: YAML front matter for the hub, then the run's numbers."""
    teacher_names = [f"{portable(teacher.base)}"] + [f"{portable(p)} ({k})" for k, p in
                                                      (("adapter", teacher.adapter), ("full fine-tune", teacher.finetuned)) if p]
    evaluation, verification = report.get("eval") or {}, (report.get("verification") or {}).get("overall") or {}
    train = report.get("train") or {}
    lines = ["---", f"base_model: {json.dumps(base)}", "library_name: peft", "pipeline_tag: text-generation",
             "tags:", "- tuneshift", "- knowledge-distillation", "- lora", "---", "",
             f"# A LoRA adapter for {base}, distilled by tuneshift", "",
             f"It carries the specialised knowledge of the fine-tuned model {' + '.join(teacher_names)} into "
             f"{base}, without that model's training data (TuneShift-KD: arXiv 2603.24518).", "",
             "## Training data", "",
             f"- {report.get('dataset_size', 0)} synthetic (prompt, teacher answer) pairs kept of "
             f"{(report.get('counts') or {}).get('candidates', 0)} candidates, by the selector "
             f"`{selector.get('selector')}` ({', '.join(f'{k}={v}' for k, v in selector.items() if k != 'selector' and not isinstance(v, (dict, list)))}).",
             f"- Training: {train.get('epochs_trained', train.get('epochs'))} epochs on {train.get('pairs')} pairs"
             + (f", best epoch {train['best_epoch']} by a held-out slice" if train.get("best_epoch") else "") + ".",
             "", "## Evaluation", ""]
    if evaluation:
        lines.append(f"- Accuracy on the user's evaluation set ({evaluation.get('n')} questions): this adapter "
                     f"{evaluation.get('target_after', 'n/a')}, the target before training "
                     f"{evaluation.get('target_before', 'n/a')}, the teacher {evaluation.get('teacher', 'n/a')}.")
    if verification:
        lines.append(f"- Data-free verification ({verification.get('n')} held-out discovered prompts): answer "
                     f"agreement with the teacher {verification.get('agreement')} (untrained "
                     f"{verification.get('agreement_before')}).")
    if not evaluation and not verification:
        lines.append("- Not evaluated in this run.")
    lines += ["", "## Use", "", "The tokenizer in this folder carries the prompt format the adapter was trained "
              "in as its chat template:", "", "```python", "from peft import PeftModel",
              "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              "tokenizer = AutoTokenizer.from_pretrained(ADAPTER)",
              f"model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained({json.dumps(base)}), ADAPTER)",
              'ids = tokenizer.apply_chat_template([{"role": "user", "content": "..."}], add_generation_prompt=True,',
              '                                    return_tensors="pt", return_dict=True)',
              "print(tokenizer.decode(model.generate(**ids, max_new_tokens=64)[0]))", "```", "",
              f"Made with tuneshift {__version__}; the run's report.json holds every number above.", ""]
    return "\n".join(lines)


def write_card(adapter: Path, teacher: ModelSpec, report: dict[str, Any]) -> None:
    """Replace the adapter folder's card with the run's (atomically); nothing when there is no adapter."""
    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        return
    base = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path") or "the target"
    atomic_write_text(adapter / "README.md", card(portable(base) if Path(base).is_absolute() else base, teacher,
                                                  report, report.get("selection") or {}))
