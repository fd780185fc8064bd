"""The augment stage's paraphrase requests to a base model, timed with and without stop strings.

    .venv/bin/python benchmarks/paraphrase_stop.py --run RUN_DIR [--questions 12] [--threads 2]

RUN_DIR is a finished `tuneshift run` folder whose `[target]` is a base model
asked in the plain "Question: ... Answer:" format (the demo's
arms/tuneshift-s0/run). Its first kept questions are sent as the stage sends
them (8 few-shot requests each, sampled), three ways in one process after a
warm-up: `old` (no stop: every batch runs to max_new_tokens, as before
Sampling.stop), `plain_end` (the answerer's implicit stop at the next
"Question:"), `stop` (plus the stage's stop at the line's end). Prints one JSON
object: seconds of each, and old / stop as the speed-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE / "core"), str(HERE / "plugins")]


def target_and_kept(run: Path) -> tuple[str, list[str]]:
    """A finished run folder's [target] model and its kept questions, in order; exits with one line if it
    is no finished run or names no target (benchmarks/paraphrase_speed.py reads runs the same way)."""
    config, candidates = run / "config.toml", run / "candidates.jsonl"
    if not config.is_file() or not candidates.is_file():
        sys.exit(f"error: {run} is not a finished run folder (no config.toml or candidates.jsonl)")
    target = tomllib.loads(config.read_text()).get("target", {}).get("model")
    if not target:
        sys.exit(f"error: {config} names no [target] model")
    return target, [c["prompt"] for c in map(json.loads, candidates.read_text().splitlines())
                    if c.get("fate") == "kept"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    target, kept = target_and_kept(args.run)

    import torch
    import tuneshift_hf.answering as answering
    from tuneshift_hf.answering import HFAnswerer

    from tuneshift._stages.augment import few_shot_request
    from tuneshift.api import Context, ModelSpec, Sampling

    torch.set_num_threads(args.threads)
    requests = [few_shot_request(q, k) for q in kept[:args.questions] for k in range(8)]
    spec = ModelSpec(base=target)
    answerer = HFAnswerer(HFAnswerer.Options(batch_size=32), Context(teacher=spec, target=None, seed=0, work_dir="."))
    sampled = dict(max_new_tokens=48, temperature=0.8, top_p=0.95)
    answerer.answer(spec, requests[:32], Sampling(**sampled, seed=1))  # loading, first-call costs
    seconds: dict[str, float] = {}
    plain_end = answering.PLAIN_END
    for name, stop, end in (("old", (), "\x00never"), ("plain_end", (), plain_end), ("stop", ("\n",), plain_end)):
        answering.PLAIN_END = end  # "\x00never": no implicit stop, the answerer before Sampling.stop
        started = time.perf_counter()
        answerer.answer(spec, requests, Sampling(**sampled, seed=0, stop=stop))
        seconds[name] = round(time.perf_counter() - started, 1)
    answering.PLAIN_END = plain_end
    print(json.dumps({"requests": len(requests), "threads": args.threads, "seconds": seconds,
                      "speedup_old_over_stop": round(seconds["old"] / seconds["stop"], 2)}))


if __name__ == "__main__":
    main()
