"""A scorer that reuses the built-in transformers scorer and adds a per-token gap.

It shows how to extend an existing implementation by delegation: the NLLs
come from `hf-scorer`, and `extra` (saved in candidates.jsonl) gains
`gap_per_token` = nll_base - nll_finetuned, in nats per response token.
"""

from __future__ import annotations

from pydantic import Field

from tuneshift.api import ModelSpec, Options, Score, Scorer


class ExampleScorerOptions(Options):
    batch_size: int = Field(8, ge=1, description="pairs per forward pass")


class ExampleScorer(Scorer):
    name = "example-scorer"
    description = "hf-scorer's perplexities plus extra.gap_per_token"
    Options = ExampleScorerOptions
    _inner: Scorer | None = None

    def _delegate(self) -> Scorer:
        """The wrapped hf-scorer, made on first use (so listing plugins loads no torch) through the Context:
        by name, never by importing another plugin's module."""
        if self._inner is None:
            self._inner = self.context.make("scorer", "hf-scorer", batch_size=self.options.batch_size)
        return self._inner

    def score(self, model: ModelSpec, pairs: list[tuple[str, str]]) -> list[Score]:
        scores = self._delegate().score(model, pairs)
        return [Score(s.nll_finetuned, s.nll_base, s.n_tokens,
                      {**s.extra, "gap_per_token": s.nll_base - s.nll_finetuned}) for s in scores]

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
