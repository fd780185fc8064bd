"""The augment stage's paraphrase requests, timed as the answerer got them before 2026-12-07 and now.

    .venv/bin/python benchmarks/paraphrase_speed.py --run RUN_DIR [--questions 0] [--threads 2] [--chunk 32]

RUN_DIR is a finished `tuneshift run` folder whose `[target]` is a base model
asked in the plain "Question: ... Answer:" format (the demo's
arms/tuneshift-s0/run). Its kept questions (all, or the first --questions) are
asked as the stage asks them (8 few-shot requests each, sampled, ended at the
line's end), `--chunk` requests per answerer call as the run's cache hands
them over (`run.batch_size`), three ways in one process after a warm-up:

- `before`: one question's requests after another, generate's own sampling
  (top-k, then top-p over the whole vocabulary), every prompt computed whole;
- `short_list`: the same order, sampling among the top-k (tuneshift_hf.sampling);
- `shipped`: one order of the worked examples after another (the stage's
  order since 2026-12-07), the short list, and requests that begin alike
  computing their beginning once (tuneshift_hf.prefixes).

Prints one JSON object: the seconds of each, the speed-ups over `before`, and
how many requests gave a usable rephrasing each way (the stage's filter,
tuneshift._phrasing.asks_the_same), so a faster way that writes worse
rephrasings shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE / "core"), str(HERE / "plugins"), str(HERE / "benchmarks")]

from paraphrase_stop import target_and_kept  # noqa: E402  (a run folder read the same way)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--questions", type=int, default=0, help="the first N kept questions (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=32, help="requests per answerer call (run.batch_size)")
    args = parser.parse_args()
    target, kept = target_and_kept(args.run)

    import torch
    import tuneshift_hf.prefixes as prefixes
    from tuneshift_hf.answering import HFAnswerer
    from tuneshift_hf.loading import load

    from tuneshift._phrasing import asks_the_same
    from tuneshift._stages.augment import SHOTS, few_shot_request
    from tuneshift.api import Context, ModelSpec, Sampling

    torch.set_num_threads(args.threads)
    kept = list(dict.fromkeys(kept))
    kept = kept[:args.questions] if args.questions else kept
    per = min(2 * 4, 2 * len(SHOTS))  # the stage's requests a question at its 4 rephrasings (model_phrasings)
    orders = {"question_major": [(q, few_shot_request(q, k)) for q in kept for k in range(per)],
              "rotation_major": [(q, few_shot_request(q, k)) for k in range(per) for q in kept]}
    spec = ModelSpec(base=target)
    answerer = HFAnswerer(HFAnswerer.Options(batch_size=32), Context(teacher=spec, target=None, seed=0, work_dir="."))
    sampling = Sampling(max_new_tokens=48, temperature=0.8, top_p=0.95, seed=0, stop=("\n",))
    answerer.answer(spec, [r for _, r in orders["question_major"][:16]], sampling)  # loading, first-call costs
    model = load(spec, answerer.options.precision).model
    own_generate, shared = model.generate, prefixes.MIN_SHARED

    def transformers_sampling(**kwargs):  # the answerer before: generate samples, over the whole vocabulary
        kwargs.pop("logits_processor", None)
        kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        return own_generate(**kwargs)

    seconds: dict[str, float] = {}
    usable: dict[str, int] = {}
    for name, order in (("before", "question_major"), ("short_list", "question_major"), ("shipped", "rotation_major")):
        model.generate = transformers_sampling if name == "before" else own_generate
        prefixes.MIN_SHARED = shared if name == "shipped" else 10**9
        requests = orders[order]
        started = time.perf_counter()
        answers = [a for i in range(0, len(requests), args.chunk)
                   for a in answerer.answer(spec, [r for _, r in requests[i:i + args.chunk]], sampling)]
        seconds[name] = round(time.perf_counter() - started, 1)
        usable[name] = sum(bool(a.text) and asks_the_same(q, a.text.split("\n")[0].strip())
                           for (q, _), a in zip(requests, answers))
    model.generate, prefixes.MIN_SHARED = own_generate, shared
    print(json.dumps({"questions": len(kept), "requests": len(requests), "threads": args.threads,
                      "chunk": args.chunk, "seconds": seconds, "usable_rephrasings": usable,
                      "speedup": {name: round(seconds["before"] / s, 2) for name, s in seconds.items()}}))


if __name__ == "__main__":
    main()
