"""`consistent`: another selector's keeps, each checked by asking the teacher the question again.

An answer the teacher invented changes when the question is put another way; a
fact it learnt does not (SelfCheckGPT, arXiv 2303.08896). So a candidate the
inner selector (`base`, confident-gap unless set) keeps is asked in
`rephrasings` other phrasings that keep its named entities, through the run's
cached answerer (and, with `samples`, the question itself sampled that many
times); it stays kept only when at least `min_consistent` of the answers hold
`agreement` of the kept answer's content words. On the demo's teacher neither
test separates its year answers from its inventions (docs/generators.md): a
small fine-tune repeats its inventions as steadily as its facts. The consistency
lands in the candidate's extra, the reason of a drop names it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneshift.api import Candidate, Decision, Options, Sampling, Selector, content_agreement, rephrasings


class ConsistentOptions(Options):
    base: str = Field("confident-gap", description="the selector whose keeps are checked")
    base_options: dict[str, Any] = Field(default_factory=dict, description="its options")
    rephrasings: int = Field(2, ge=1, le=8, description="phrasings asked per kept candidate")
    agreement: float = Field(0.5, gt=0, le=1, description="share of the kept answer's content words an answer holds")
    min_consistent: float = Field(1.0, gt=0, le=1, description="share of the phrasings that must agree")
    max_new_tokens: int = Field(64, ge=1, description="length of the teacher's answers to the phrasings")
    samples: int = Field(0, ge=0, le=8, description="also sample this many answers to the question itself "
                                                    "(SelfCheckGPT); each must agree like a phrasing's")
    temperature: float = Field(0.7, gt=0, le=2, description="the temperature of those samples")


class Consistent(Selector):
    name = "consistent"
    description = "another selector's keeps, kept only when the teacher answers their rephrasings alike"
    Options = ConsistentOptions
    _inner: Selector | None = None

    def inner(self) -> Selector:
        if self._inner is None:
            self._inner = self.context.make("selector", self.options.base, **self.options.base_options)
        return self._inner

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "base": self.inner().identity()}

    def check(self) -> None:
        self.inner().check()

    def decide(self, scored: list[Candidate], kept: list[Candidate]) -> list[Decision]:
        o = self.options
        decisions = self.inner().decide(scored, kept)
        asked = {c.id: rephrasings(c.prompt, o.rephrasings) for c, d in zip(scored, decisions) if d.keep}
        prompts = [p for c in scored if c.id in asked for p in asked[c.id]]
        greedy = Sampling(max_new_tokens=o.max_new_tokens, seed=self.context.seed)
        answers = iter(self.context.generate(self.context.teacher, prompts, greedy) if prompts else [])
        samples = self.sampled([c for c in scored if c.id in asked])
        out = []
        for cand, dec in zip(scored, decisions):
            if cand.id not in asked:
                out.append(dec)
                continue
            agree = [content_agreement(cand.response or "", next(answers).text or "", p) >= o.agreement
                     for p in asked[cand.id]]
            agree += [content_agreement(cand.response or "", text, cand.prompt) >= o.agreement
                      for text in samples.get(cand.id, [])]
            share = sum(agree) / len(agree) if agree else 1.0
            extra = {**dec.extra, "consistency": round(share, 4)}
            if share < o.min_consistent:
                out.append(Decision(False, dec.value, f"inconsistent: {sum(agree)} of {len(agree)} rephrasings"
                                                      f"{' and samples' if o.samples else ''} answered alike", extra))
            else:
                out.append(Decision(True, dec.value, dec.reason, extra))
        return out

    def sampled(self, cands: list[Candidate]) -> dict[int, list[str]]:
        """`samples` answers to each question at `temperature`, one call per sample with its own seed (the
        run's cache keys an answer by prompt and sampling, so one seed would give one answer)."""
        o, out = self.options, {c.id: [] for c in cands}
        for k in range(o.samples if cands else 0):
            sampling = Sampling(max_new_tokens=o.max_new_tokens, temperature=o.temperature,
                                seed=self.context.seed * 1000 + k + 1)
            for cand, answer in zip(cands, self.context.generate(self.context.teacher, [c.prompt for c in cands],
                                                                 sampling)):
                out[cand.id].append(answer.text or "")
        return out

    def summary(self) -> dict[str, Any]:
        return {"base": self.options.base, **self.inner().summary()}

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
