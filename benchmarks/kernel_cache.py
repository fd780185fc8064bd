"""Peak RSS and seconds of one CPU training with oneDNN's kernel cache at its default and as shipped.

    .venv/bin/python benchmarks/kernel_cache.py [--epochs 8] [--threads 1]

The training: the demo teacher's recipe (SmolLM2-135M-Instruct, rank 16, batch 16, constant rate 1e-3) on the
quick organisation's private set, seed 0. Each variant runs in a fresh process, one after the other:
`default` sets ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 (oneDNN's own default, before tuneshift capped it);
`shipped` leaves it unset, so tuneshift_hf.loading caps it (tuneshift_hf.memory.KERNEL_CACHE). Prints one JSON object: each
variant's peak RSS and training seconds, the ratios, and whether the two adapters are the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoring import smollm2  # noqa: E402  (the teacher base's GGUF file, found as the scoring benchmark finds it)

CHILD = """
import json, resource, sys, time
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[3]))
from tuneshift._commands.state import State
from tuneshift._registry import Registry
from tuneshift.api import ModelSpec, build_context
from tuneshift_demo.run import make_domain
from tuneshift_demo.teacher import RECIPE

out, epochs, base = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[4]
state = State(Registry(), [])
domain, _ = make_domain("organisation", "quick", None)
pairs = [{"prompt": r["prompt"], "response": r["response"]} for r in domain.private_set()]
options = {k: RECIPE[k] for k in ("rank", "alpha", "dropout", "learning_rate", "batch_size")}
trainer = state.build("trainer", build_context(state, ModelSpec(base=base), work_dir=out), **options,
                      epochs=epochs, seed=0)
begun = time.perf_counter()
trainer.train(ModelSpec(base=base), pairs, str(out / "adapter"), str(out / "checkpoint"))
print(json.dumps({"seconds": round(time.perf_counter() - begun, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def run(variant: str, folder: Path, epochs: int, threads: int, base: str) -> dict:
    out = folder / variant
    env = dict(os.environ, TUNESHIFT_CACHE=str(out / "cache"))  # each converts its own GGUF copy
    env.pop("ONEDNN_PRIMITIVE_CACHE_CAPACITY", None)
    if variant == "default":
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = "1024"
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(epochs), str(threads), base], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"benchmarks/kernel_cache.py: the {variant} training failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["adapter_sha256"] = hashlib.sha256((out / "adapter" / "adapter_model.safetensors").read_bytes()).hexdigest()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8, help="the demo teacher's 8 by default")
    parser.add_argument("--threads", type=int, default=1, help="the teacher's share of 2 cores in the demo")
    args = parser.parse_args()
    base = smollm2()
    with tempfile.TemporaryDirectory(prefix="tuneshift-kernel-cache-") as tmp:
        results = {v: run(v, Path(tmp), args.epochs, args.threads, base) for v in ("default", "shipped")}
    d, s = results["default"], results["shipped"]
    print(json.dumps({"epochs": args.epochs, "threads": args.threads, **results,
                      "peak_rss_ratio": round(s["peak_rss_mb"] / d["peak_rss_mb"], 3),
                      "seconds_ratio": round(s["seconds"] / d["seconds"], 3),
                      "same_adapter": d["adapter_sha256"] == s["adapter_sha256"]}, indent=2))


if __name__ == "__main__":
    main()
