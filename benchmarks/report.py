"""Turn the benchmark variants' raw measurements into rates, FLOP/s, ratios and the issue's targets.

FLOPs count useful work: 2 x non-embedding parameters per real (unpadded) token
and model pass (base and fine-tuned), 2 x LoRA parameters per token of the
adapter pass, and 2 x hidden x vocabulary per position whose logits a variant
actually computes (response positions for tuneshift, every position for naive).
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

TARGETS = {"scorer_speedup": 5.0, "fraction_of_matmul_peak": 0.5, "rss_vs_one_copy": 1.3,
           "max_abs_nll_diff": 1e-4, "cached_vs_first_load": 1 / 3,
           "bf16_speedup": 4.0, "bf16_fraction_of_peak": 0.8, "bf16_spearman": 0.999}


def _rate(x: float, seconds: float) -> float:
    return round(x / seconds, 1) if seconds else float("nan")


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return round(float(spearmanr(x, y).statistic), 6)


def bfloat16(r: dict[str, Any], flops: float, tokens: int, peak: float) -> dict[str, Any]:
    """The bfloat16 scorer against the naive float32 loop (speed) and the float32 scorer (agreement)."""
    bf, ts, nv = r["tuneshift-bf16"], r["tuneshift"], r["naive"]
    gap = lambda s: [b - f for b, f in zip(s["nll_base"], s["nll_finetuned"])]  # noqa: E731  the selection score
    diff = max(max(abs(a - b) for a, b in zip(bf[k], ts[k])) for k in ("nll_finetuned", "nll_base"))
    return {"seconds": bf["seconds"], "passes": bf.get("passes"), "tokens_per_s": _rate(tokens, bf["seconds"]),
            "gflops": round(flops / bf["seconds"] / 1e9, 1), "fraction_of_bf16_peak": round(flops / bf["seconds"] / peak, 3),
            "speedup_vs_naive_float32": round(nv["seconds"] / bf["seconds"], 2),
            "speedup_vs_tuneshift_float32": round(ts["seconds"] / bf["seconds"], 2), "peak_rss_mb": bf["rss_mb"],
            "max_abs_nll_diff_vs_float32": round(diff, 6),
            "spearman_vs_float32": {"gap": _spearman(gap(bf), gap(ts)),
                                    "nll_finetuned": _spearman(bf["nll_finetuned"], ts["nll_finetuned"]),
                                    "nll_base": _spearman(bf["nll_base"], ts["nll_base"])}}


def summarise(r: dict[str, Any], common: dict[str, Any], ns: Namespace) -> dict[str, Any]:
    one, ts, nv, mm = r["one-copy"], r["tuneshift"], r["naive"], r["matmul"]
    body, head = one["non_embedding_params"], one["hidden"] * one["vocab"]
    lora = r["make-adapter"]["lora_params"]
    tokens = ts["prompt_tokens"] + ts["response_tokens"]
    flops_ts = 2 * (2 * body * tokens) + 2 * lora * tokens + 2 * (2 * head * ts["response_tokens"])
    flops_nv = 2 * (2 * body * tokens) + 2 * (2 * head * tokens)  # the merged copy has no LoRA FLOPs
    diff = max(max(abs(a - b) for a, b in zip(ts[k], nv[k])) for k in ("nll_finetuned", "nll_base"))
    peak = mm["gflops"] * 1e9
    gt, gn = r["gen-tuneshift"], r["gen-naive"]
    speedup = nv["seconds"] / ts["seconds"]
    frac = flops_ts / ts["seconds"] / peak
    rss_ratio = ts["rss_mb"] / one["rss_mb"]
    load_ratio = r["load-cached"]["seconds"] / r["load-first"]["seconds"]
    bf16 = bfloat16(r, flops_ts, tokens, r["matmul-bf16"]["gflops"] * 1e9)
    return {
        "setup": {"model": "SmolLM2-135M-Instruct Q4_1 GGUF via the safetensors cache, float32, CPU",
                  "adapter": "LoRA r=16 alpha=32 all-linear, B ~ N(0, 0.02)", "pairs": len(common["pairs"]),
                  "prompt_tokens": ts["prompt_tokens"], "response_tokens": ts["response_tokens"],
                  "threads": one["threads"], "quick": ns.quick, "loadavg_before": r["loadavg_before"],
                  "loadavg_after": r["loadavg_after"], "scorer_options": ts["options"]},
        "matmul_peak_gflops": mm["gflops"], "matmul_peak_gflops_bf16": r["matmul-bf16"]["gflops"],
        "scoring": {
            "tuneshift": {"seconds": ts["seconds"], "passes": ts.get("passes"), "tokens_per_s": _rate(tokens, ts["seconds"]),
                          "pairs_per_s": _rate(len(common["pairs"]), ts["seconds"]),
                          "gflops": round(flops_ts / ts["seconds"] / 1e9, 1), "fraction_of_peak": round(frac, 3),
                          "padding_overhead": round(ts["padded_tokens"] / (2 * tokens) - 1, 3),
                          "mixed_batch": ts["mixed_batch"], "peak_rss_mb": ts["rss_mb"]},
            "naive": {"seconds": nv["seconds"], "passes": nv.get("passes"), "tokens_per_s": _rate(tokens, nv["seconds"]),
                      "pairs_per_s": _rate(len(common["pairs"]), nv["seconds"]),
                      "gflops": round(flops_nv / nv["seconds"] / 1e9, 1),
                      "fraction_of_peak": round(flops_nv / nv["seconds"] / peak, 3), "peak_rss_mb": nv["rss_mb"]},
            "speedup": round(speedup, 2), "one_copy_rss_mb": one["rss_mb"], "rss_vs_one_copy": round(rss_ratio, 3),
            "naive_rss_vs_one_copy": round(nv["rss_mb"] / one["rss_mb"], 3), "max_abs_nll_diff": diff,
            "bfloat16": bf16,
        },
        "generation": {
            "prompts": len(common["prompts"]), "max_new_tokens": common["max_new_tokens"],
            "tuneshift": {"seconds": gt["seconds"], "new_tokens": gt["new_tokens"],
                          "tokens_per_s": _rate(gt["new_tokens"], gt["seconds"])},
            "naive": {"seconds": gn["seconds"], "new_tokens": gn["new_tokens"],
                      "tokens_per_s": _rate(gn["new_tokens"], gn["seconds"])},
            "speedup": round(gn["seconds"] / gt["seconds"], 2),
            "identical_answers": sum(a == b for a, b in zip(gt["texts"], gn["texts"])),
        },
        "gguf_load": {"first_s": r["load-first"]["seconds"], "cached_s": r["load-cached"]["seconds"],
                      "cached_from_cache": r["load-cached"]["from_cache"], "ratio": round(load_ratio, 3),
                      "first_rss_mb": r["load-first"]["rss_mb"], "cached_rss_mb": r["load-cached"]["rss_mb"]},
        "targets": {"scorer_speedup_ge_5x": speedup >= TARGETS["scorer_speedup"],
                    "ge_50pct_of_matmul_peak": frac >= TARGETS["fraction_of_matmul_peak"],
                    "rss_le_1_3x_one_copy": rss_ratio <= TARGETS["rss_vs_one_copy"],
                    "agreement_lt_1e-4": diff < TARGETS["max_abs_nll_diff"],
                    "cached_load_lt_third_of_first": load_ratio < TARGETS["cached_vs_first_load"],
                    "bf16_ge_4x_naive_float32": bf16["speedup_vs_naive_float32"] >= TARGETS["bf16_speedup"],
                    "bf16_ge_80pct_of_bf16_peak": bf16["fraction_of_bf16_peak"] >= TARGETS["bf16_fraction_of_peak"],
                    "bf16_spearman_ge_0_999": bf16["spearman_vs_float32"]["gap"] >= TARGETS["bf16_spearman"]},
    }
