"""Per-model loading controls: dtype, device, device_map and quantization, checked before any work; models
released between stages."""

from __future__ import annotations

import pytest
from conftest import TINY, one_error_line, run_cli, tiny_overrides

from tuneshift.api import ModelSpec


@pytest.mark.parametrize("sets, fragment", [
    ({"teacher.device": "gpu"}, "device 'gpu': expected auto, cpu, cuda, cuda:N or mps"),
    ({"target.dtype": "float8"}, "target.dtype: Input should be 'auto', 'float32', 'bfloat16' or 'float16'"),
    ({"teacher.device": "cpu", "teacher.device_map": "auto"}, "give device or device_map, not both"),
    ({"teacher.device": "cuda"}, "config: teacher.device = cuda: no CUDA GPU here"),
    ({"target.device": "cuda:1"}, "config: target.device = cuda:1: no CUDA GPU here"),
    ({"teacher.quantization": "4bit"}, "config: teacher.quantization = 4bit: bitsandbytes quantisation needs a CUDA GPU"),
])
def test_loading_controls_this_machine_cannot_honour_are_one_line_before_any_work(tiny, tmp_path, sets, fragment):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a machine with CUDA honours these")
    out = tmp_path / "run"
    line = one_error_line(run_cli("run", str(TINY / "config.toml"), "--out", str(out), *tiny_overrides(tiny, **sets)))
    assert fragment in line
    assert not out.exists()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_a_models_dtype_decides_how_it_loads(tiny, dtype):
    import torch
    from tuneshift_hf.loading import clear, load

    clear()
    loaded = load(ModelSpec(base=str(tiny["target"]), dtype=dtype), "float32")
    assert {p.dtype for p in loaded.model.parameters()} == {getattr(torch, dtype)}
    clear()


def test_device_map_auto_loads_through_accelerate_and_answers_the_same(tiny, monkeypatch):
    import transformers
    from tuneshift_hf.loading import clear, load

    seen = []
    original = transformers.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: seen.append(k.get("device_map")) or original(*a, **k))
    clear()
    spread = load(ModelSpec(base=str(tiny["teacher_base"]), device_map="auto"), "float32")
    plain = load(ModelSpec(base=str(tiny["teacher_base"])), "float32")
    assert seen == ["auto", None]  # placed while loading, never first whole on one device
    ids = plain.tokenizer("Who leads Orion?", return_tensors="pt")["input_ids"]
    assert spread.device.type == "cpu" and (spread.model(ids).logits - plain.model(ids).logits).abs().max() < 1e-5
    clear()


def test_release_frees_the_models_and_the_next_call_loads_them_again(tiny):
    from tuneshift_hf import loading
    from tuneshift_hf.shared import HFAnswerer

    from tuneshift.api import Sampling, State, build_context
    from tuneshift._registry import Registry

    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    answerer = HFAnswerer(HFAnswerer.Options(), build_context(State(Registry(), []), spec))
    first = answerer.answer(spec, ["Who leads Orion?"], Sampling(max_new_tokens=8))
    assert loading._models
    answerer.release()
    assert not loading._models
    assert answerer.answer(spec, ["Who leads Orion?"], Sampling(max_new_tokens=8)) == first
    loading.clear()


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_quantization_reaches_transformers_as_a_bitsandbytes_config(tiny, monkeypatch, bits):
    """The wiring only: this machine has no CUDA, so the load itself is stopped where transformers would
    quantise (loading in 4 and 8 bits on a GPU: not run in these sessions)."""
    import transformers
    from tuneshift_hf.loading import load_causal_lm

    seen = {}

    def stop(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stopped before loading")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", stop)
    with pytest.raises(RuntimeError, match="stopped before loading"):
        load_causal_lm(str(tiny["teacher_base"]), spec=ModelSpec(base=str(tiny["teacher_base"]), quantization=bits,
                                                                 dtype="bfloat16"))
    config = seen["quantization_config"]
    assert isinstance(config, transformers.BitsAndBytesConfig)
    assert (config.load_in_4bit, config.load_in_8bit) == ((True, False) if bits == "4bit" else (False, True))
    assert seen["device_map"] and seen["dtype"] is __import__("torch").bfloat16
