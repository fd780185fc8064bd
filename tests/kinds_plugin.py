"""A test plugin with one implementation of every kind, each registered through its own hook.

The implementations are small but real: they change what the pipeline does
in ways the test can see (origins, dedup rule, keep-all selection, extra
fields), delegating model work to the built-ins.
"""

from __future__ import annotations

import tuneshift
from tuneshift.kinds import (Answerer, Candidate, Decision, Deduper, Duplicate, Expander, ExpansionState,
                             Proposal, Scorer, Selector, Trainer)


class AskAgain(Expander):
    name = "ask-again"

    def propose(self, state: ExpansionState, n: int) -> list[Proposal]:
        return [Proposal(prompt=f"Tell me again: {c.prompt}", origin=self.name, parent=c.prompt, operator="again")
                for c in state.kept if not c.prompt.startswith("Tell me again")][:n]


class ShoutingAnswerer(Answerer):
    name = "shouting-answerer"

    def answer(self, model, prompts, sampling):
        from tuneshift_hf.answering import HFAnswerer

        inner = HFAnswerer(HFAnswerer.Options(), self.context).answer(model, prompts, sampling)
        return [type(a)(a.text.upper() if a.text else a.text, a.error) for a in inner]


class FirstWordsDedup(Deduper):
    name = "first-words-dedup"

    def find_duplicates(self, prompts, earlier):
        seen = {" ".join(p.split()[:4]): p for p in earlier}
        out = []
        for p in prompts:
            key = " ".join(p.split()[:4])
            out.append(Duplicate(of=seen[key], similarity=0.5) if key in seen else None)
            seen.setdefault(key, p)
        return out


class TaggingScorer(Scorer):
    name = "tagging-scorer"

    def score(self, model, pairs):
        from tuneshift_hf.scoring import HFScorer

        scores = HFScorer(HFScorer.Options(), self.context).score(model, pairs)
        return [type(s)(s.nll_finetuned, s.nll_base, s.n_tokens, {"tagged": True}) for s in scores]


class KeepAll(Selector):
    name = "keep-all"

    def decide(self, scored: list[Candidate], kept: list[Candidate]) -> list[Decision]:
        return [Decision(True, c.nll_base - c.nll_finetuned, "kept by keep-all") for c in scored]


class OneEpochLoRA(Trainer):
    name = "one-epoch-lora"

    def train(self, model, pairs, out_dir, checkpoint_dir):
        from tuneshift_hf.training import LoRATrainer

        metrics = LoRATrainer(LoRATrainer.Options(epochs=1, rank=2, alpha=4), self.context).train(
            model, pairs, out_dir, checkpoint_dir)
        return {**metrics, "trainer": self.name}


@tuneshift.hookimpl
def register_expanders(register):
    register(AskAgain)


@tuneshift.hookimpl
def register_answerers(register):
    register(ShoutingAnswerer)


@tuneshift.hookimpl
def register_dedupers(register):
    register(FirstWordsDedup)


@tuneshift.hookimpl
def register_scorers(register):
    register(TaggingScorer)


@tuneshift.hookimpl
def register_selectors(register):
    register(KeepAll)


@tuneshift.hookimpl
def register_trainers(register):
    register(OneEpochLoRA)
