"""Dedup benchmark: the st-faiss step on 100k short prompts against a naive pairwise loop.

Prints one JSON object: seconds for the FAISS step (embedding excluded) and
for embedding + FAISS, the naive loop's seconds on a subset and scaled to the
full size (pairs grow quadratically), their ratio, whether the decisions on
the subset are identical, and the recall of planted near-duplicates.

    python benchmarks/dedup.py [--n 100000] [--subset 3000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np

SYLLABLES = ["ar", "bel", "cor", "dan", "el", "fen", "gar", "hol", "is", "jor", "kel", "lin", "mor", "nad",
             "or", "pel", "quin", "ros", "sel", "tor", "ul", "vin", "wen", "yar", "zel"]
FRAMES = ["Where was {e} born?", "Which department does {e} work in?", "Who manages {e}?",
          "What project does {e} lead?", "When did {e} join the company?", "What is {e}'s job title?",
          "Which city does {e} live in?", "Who mentored {e}?", "What award did {e} win?",
          "Which office is {e} based in?"]
EDITS = [lambda p: p.lower(), lambda p: p.replace("?", " ?"), lambda p: "Tell me: " + p,
         lambda p: p.replace("What is", "What's"), lambda p: p.rstrip("?") + ", please?"]


def make_prompts(n: int, planted: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    rng = random.Random(seed)

    def name() -> str:
        word = lambda k: "".join(rng.choice(SYLLABLES) for _ in range(k)).capitalize()  # noqa: E731
        return f"{word(rng.randint(2, 3))} {word(rng.randint(2, 3))}"

    entities = list(dict.fromkeys(name() for _ in range(n)))
    base = [rng.choice(FRAMES).format(e=e) for e in entities]
    prompts = base[: n - planted]
    pairs = []
    for _ in range(planted):
        i = rng.randrange(len(prompts) // 2)
        prompts.append(rng.choice(EDITS)(prompts[i]))
        pairs.append((i, len(prompts) - 1))
    return prompts, pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--subset", type=int, default=3000)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--quick", action="store_true", help="20k prompts, 1500 in the subset")
    ap.add_argument("--embeddings", default=None, help="a .npy file: reuse the embeddings of an earlier run")
    ap.add_argument("--check-ivf", action="store_true", help="also compare IVF with an exact flat search at full size")
    args = ap.parse_args()
    if args.quick:
        args.n, args.subset = 20_000, 1500
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from tuneshift_faiss.dedup import default_model
    from tuneshift_faiss.search import build_index, first_of_group, naive_first_of_group, pairs_above

    torch.set_num_threads(os.cpu_count() or 1)
    prompts, planted = make_prompts(args.n, planted=args.n // 50)
    model = SentenceTransformer(default_model(), device="cpu", local_files_only=True)
    cached = Path(args.embeddings) if args.embeddings else None
    t0 = time.perf_counter()
    if cached and cached.exists():
        vectors, embed_s = np.load(cached), float(json.loads(cached.with_suffix(".json").read_text())["seconds"])
    else:
        vectors = model.encode(prompts, batch_size=256, normalize_embeddings=True,
                               convert_to_numpy=True).astype("float32")
        embed_s = time.perf_counter() - t0
        if cached:
            np.save(cached, vectors)
            cached.with_suffix(".json").write_text(json.dumps({"seconds": embed_s}))

    def faiss_step(v: np.ndarray, exact_limit: int = 20_000):
        index = build_index(v, exact_limit)
        empty = [(np.empty(0, "int64"), np.empty(0, "float32"))] * len(v)
        return first_of_group(pairs_above(index, v, args.threshold), empty, [False] * len(v))

    t0 = time.perf_counter()
    verdicts = faiss_step(vectors)
    faiss_s = time.perf_counter() - t0
    planted_copies = {j for _, j in planted}
    recall = sum(verdicts[j] is not None for j in planted_copies) / len(planted_copies)
    false_dups = sum(v is not None for i, v in enumerate(verdicts) if i not in planted_copies)
    sims = [float(vectors[i] @ vectors[j]) for i, j in planted]

    sub = vectors[: args.subset]
    t0 = time.perf_counter()
    naive = naive_first_of_group(sub, args.threshold)
    naive_s = time.perf_counter() - t0
    naive_scaled = naive_s * (args.n / args.subset) ** 2
    as_naive = lambda vs: [None if v is None else v[1] for v in vs]  # noqa: E731
    same_flat = as_naive(faiss_step(sub)) == [None if v is None else v[0] for v in naive]
    same_ivf = as_naive(faiss_step(sub, exact_limit=0)) == [None if v is None else v[0] for v in naive]
    agreement = None
    if args.check_ivf and len(vectors) > 20_000:  # IVF against exact search on the full set (about a minute)
        exact = faiss_step(vectors, exact_limit=len(vectors))
        agreement = sum((a is None) == (b is None) for a, b in zip(verdicts, exact)) / len(exact)
    print(json.dumps({
        "n": args.n, "threshold": args.threshold, "threads": torch.get_num_threads(), "loadavg": os.getloadavg(),
        "embed_seconds": round(embed_s, 2), "faiss_step_seconds": round(faiss_s, 3),
        "total_seconds_with_embedding": round(embed_s + faiss_s, 2),
        "index": "flat" if args.n <= 20_000 else "ivf", "duplicates_found": sum(v is not None for v in verdicts),
        "naive_subset": args.subset, "naive_subset_seconds": round(naive_s, 3),
        "naive_scaled_seconds": round(naive_scaled, 1), "speedup_vs_naive": round(naive_scaled / faiss_s, 1),
        "identical_decisions_on_subset": {"flat": same_flat, "ivf": same_ivf},
        "ivf_vs_exact_keep_drop_agreement_full": agreement,
        "planted": len(planted), "planted_recall": round(recall, 4),
        "distinct_prompts_marked_duplicate": false_dups,
        "planted_similarity": {"min": round(min(sims), 4), "median": round(float(np.median(sims)), 4)},
    }, indent=2))


if __name__ == "__main__":
    main()
