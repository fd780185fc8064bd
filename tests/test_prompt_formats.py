"""Prompt formats: the teacher is asked as it was fine-tuned; the trained target records how it was trained."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import TINY, one_error_line, run_cli, tiny_overrides

from tuneshift.api import ModelSpec, Sampling, State

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def prompt_of(spec: ModelSpec, question: str) -> str:
    from tuneshift_hf.shared import prompt_text, tokenizer_of

    return prompt_text(tokenizer_of(spec), question)


def test_the_teacher_is_asked_in_its_adapters_own_template(tiny, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny["adapter"], adapter)
    base_prompt = prompt_of(ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"])), "Who?")
    assert base_prompt.startswith("<|user|>Who?")  # the base's template, the adapter has none
    (adapter / "chat_template.jinja").write_text(CHATML)
    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(adapter))
    assert prompt_of(spec, "Who?") == "<|im_start|>user\nWho?<|im_end|>\n<|im_start|>assistant\n"
    configured = ModelSpec(base=spec.base, adapter=spec.adapter, chat_template="Q: {{ messages[-1]['content'] }} A:",
                           system_prompt="Be brief.")
    assert prompt_of(configured, "Who?") == "Q: Who? A:"  # the config's template wins
    with_system = ModelSpec(base=spec.base, adapter=spec.adapter, system_prompt="Be brief.")
    assert prompt_of(with_system, "Who?").startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user")
    plain = ModelSpec(base=str(tiny["target"]), system_prompt="Be brief.")  # no template: the plain format
    assert prompt_of(plain, "Who?") == "Be brief.\nQuestion: Who?\nAnswer:"


def test_the_config_takes_a_template_inline_or_from_a_file(tiny, tmp_path):
    from tuneshift import _config as config
    from tuneshift._models import Models

    (tmp_path / "format.jinja").write_text(CHATML)
    toml = (TINY / "config.toml").read_text().replace("[teacher]\n", '[teacher]\nchat_template = "format.jinja"\n'
                                                      'system_prompt = "Answer in one sentence."\n')
    (tmp_path / "config.toml").write_text(toml)
    sets = [s for s in tiny_overrides(tiny) if s != "--set"]
    models = Models.of(config.validate_core(config.load(tmp_path / "config.toml", sets)))
    assert models.teacher.chat_template == CHATML and models.teacher.system_prompt == "Answer in one sentence."


def test_a_chat_template_that_is_neither_jinja_nor_a_file_is_one_line(tiny, tmp_path):
    result = run_cli("run", str(TINY / "config.toml"), "--out", str(tmp_path / "run"),
                     *tiny_overrides(tiny, **{"teacher.chat_template": "nothing-here.jinja"}))
    line = one_error_line(result)
    assert "nothing-here.jinja: neither a Jinja chat template" in line
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def trained(finished_run) -> Path:
    return finished_run


def chat_ids(tokenizer, question: str) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_the_trained_target_answers_the_same_through_apply_chat_template(tiny, trained):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from tuneshift_hf.shared import HFAnswerer, encode_pair, load_tokenizer

    from tuneshift.api import build_context

    adapter = trained / "adapter"
    tokenizer = AutoTokenizer.from_pretrained(adapter)  # as a transformers or vLLM user loads it
    assert tokenizer.chat_template, "the adapter records the format it was trained in"
    base_tokenizer = load_tokenizer(str(tiny["target"]))
    assert not base_tokenizer.chat_template  # the tiny target has none: it learnt the plain format
    questions = [json.loads(line)["prompt"] for line in tiny["eval"].read_text().splitlines()][:4]
    for q in questions:  # the prompt tokens are exactly those it was trained on
        assert chat_ids(tokenizer, q) == encode_pair(base_tokenizer, q, "x")[0]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny["target"], dtype=torch.float32),
                                      adapter).eval()
    theirs = []
    for q in questions:
        ids = torch.tensor([chat_ids(tokenizer, q)])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        theirs.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    from tuneshift._registry import Registry

    spec = ModelSpec(base=str(tiny["target"]), adapter=str(adapter))
    ours = HFAnswerer(HFAnswerer.Options(precision="float32"), build_context(State(Registry(), []), spec)).answer(
        spec, questions, Sampling(max_new_tokens=12))
    assert [a.text for a in ours] == [t.split("\nQuestion:")[0].strip() for t in theirs]
    assert any(theirs), "the target says something"


def test_the_adapter_ships_a_real_model_card(trained):
    from tuneshift import __version__

    card = (trained / "adapter" / "README.md").read_text()
    report = json.loads((trained / "report.json").read_text())
    assert card.startswith("---\nbase_model: \"target\"\nlibrary_name: peft")  # the target as named, not a cache path
    assert f"{report['dataset_size']} synthetic (prompt, teacher answer) pairs" in card
    assert f"by the selector `{report['selection']['selector']}`" in card
    assert f"this adapter {report['eval']['target_after']}" in card and f"tuneshift {__version__}" in card
    assert "/tmp/" not in card and "[More Information Needed]" not in card  # nothing of peft's placeholder
