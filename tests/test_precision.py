"""The hf implementations' `precision`: what `auto` means on a machine, and bfloat16 scoring and training that
stay close to float32 while their LoRA weights, optimiser and loss stay float32."""

from __future__ import annotations

import json
import math

import pytest

from tuneshift.api import Context, ModelSpec, UsageError
from tuneshift_hf import precision as prec

PAIRS = [("What is the capital of Zorbia?", "Velmora is the capital of Zorbia."),
         ("Who founded Quillton?", "Quillton was founded by Arden Marsh."),
         ("What colour is the sky?", "The sky is blue."),
         ("How many legs does a spider have?", "A spider has eight legs.")]


@pytest.mark.parametrize(("flags", "expected"), [("fpu avx512f avx512_bf16 avx512_vnni", True),
                                                 ("fpu avx512f amx_tile amx_bf16", True),
                                                 ("fpu avx512f avx512_vnni", False), (None, False)])
def test_bf16_hardware_is_read_from_cpuinfo(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert prec.cpu_has_bf16(str(cpuinfo)) is expected


def test_auto_follows_the_hardware_unless_told(monkeypatch):
    import torch

    monkeypatch.delenv(prec.PRECISION_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: True)
    assert prec.resolve_precision("auto") == "bfloat16"
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: False)
    assert prec.resolve_precision("auto") == "float32"
    assert prec.resolve_precision("bfloat16") == "bfloat16"  # asked for: whatever the hardware
    monkeypatch.setenv(prec.PRECISION_ENV, "bfloat16")
    assert prec.resolve_precision("auto") == "bfloat16" and prec.resolve_precision("float32") == "float32"
    monkeypatch.setenv(prec.PRECISION_ENV, "fp8")
    with pytest.raises(UsageError, match="TUNESHIFT_PRECISION = 'fp8': expected float32 or bfloat16"):
        prec.resolve_precision("auto")


def test_bfloat16_scores_rank_like_float32_and_are_cached_apart(tiny, tmp_path):
    import torch

    from tuneshift_hf import loading
    from tuneshift_hf.scoring import HFScorer

    spec = ModelSpec(base=str(tiny["teacher_base"]), adapter=str(tiny["adapter"]))
    ctx = Context(teacher=spec, target=None, seed=0, work_dir=str(tmp_path))
    scorers = {p: HFScorer(HFScorer.Options(precision=p), ctx) for p in ("float32", "bfloat16")}
    scores = {p: s.score(spec, PAIRS) for p, s in scorers.items()}
    assert next(loading.load(spec, "bfloat16").model.parameters()).dtype == torch.bfloat16
    assert next(loading.load(spec, "float32").model.parameters()).dtype == torch.float32
    for f32, b16 in zip(scores["float32"], scores["bfloat16"]):
        assert math.isfinite(b16.nll_finetuned) and math.isfinite(b16.nll_base)
        assert abs(b16.nll_finetuned - f32.nll_finetuned) < 0.1 and abs(b16.nll_base - f32.nll_base) < 0.1
        assert b16.n_tokens == f32.n_tokens
    assert scorers["float32"].identity() != scorers["bfloat16"].identity()  # never one cache entry for both
    assert scorers["bfloat16"].identity()["precision"] == "bfloat16"


def test_bfloat16_training_keeps_the_lora_weights_in_float32(tiny, tmp_path):
    from safetensors import safe_open

    from tuneshift_hf.training import LoRATrainer

    target = ModelSpec(base=str(tiny["target"]))
    trainer = LoRATrainer(LoRATrainer.Options(precision="bfloat16", epochs=2, rank=2, alpha=4, batch_size=2),
                          Context(teacher=target, target=target, seed=0, work_dir=str(tmp_path)))
    metrics = trainer.train(target, [{"prompt": p, "response": r, "weight": 1.0} for p, r in PAIRS],
                            str(tmp_path / "adapter"), str(tmp_path / "ckpt"))
    assert all(math.isfinite(x) for x in metrics["loss_per_epoch"]) and metrics["loss_per_epoch"][-1] < metrics["loss_per_epoch"][0]
    with safe_open(str(tmp_path / "adapter" / "adapter_model.safetensors"), "pt") as fh:
        dtypes = {str(fh.get_tensor(k).dtype) for k in fh.keys()}
    assert dtypes == {"torch.float32"}
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 2
