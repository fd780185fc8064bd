"""examples/scale: the real-scale recipe's config is valid as written (every section, every option of the
plugins it names, the vLLM plugin pip-installed), checked without loading or fetching a model."""

from __future__ import annotations

import json

from conftest import ROOT, run_cli
from test_vllm import env_of, site  # noqa: F401  (the pip-installed tuneshift-vllm)

from tuneshift._inputs import load_seeds

RECIPE = ROOT / "examples" / "scale" / "config.toml"


def test_the_scale_recipe_validates_with_the_plugins_it_names(site):  # noqa: F811
    result = run_cli("config", "show", str(RECIPE), "--json", env={**env_of(site), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout)
    assert shown["teacher"]["base"] == "meta-llama/Llama-3.1-8B-Instruct"  # a hub id, not made a path
    assert shown["target"] == {**shown["target"], "model": "Qwen/Qwen3-8B-Base", "dtype": "bfloat16"}
    assert {k: shown[k]["use"] for k in ("expander", "answerer", "scorer", "selector", "trainer")} == {
        "expander": "agentic", "answerer": "vllm-answerer", "scorer": "vllm-scorer", "selector": "confident-gap",
        "trainer": "trl-sft"}
    assert shown["scorer"]["token_logprobs"] and shown["trainer"]["report_to"] == ["tensorboard"]
    assert len(load_seeds(shown["seeds"]["path"], None)) == 8


def test_the_docs_walk_through_the_recipe_as_it_is():
    guide = (ROOT / "docs" / "scaling.md").read_text()
    recipe = RECIPE.read_text()
    assert "examples/scale/config.toml" in guide
    for command in ("vllm serve meta-llama/Llama-3.1-8B-Instruct", "accelerate launch --multi_gpu", "tuneshift push"):
        assert command in guide and command in recipe, command
