"""Score (prompt, response) pairs: mean NLL of the response under the fine-tuned model and its base.

One copy of the weights serves both when the fine-tuned model is base +
adapter: the base score is the same forward pass with the adapter disabled.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import Field

from tuneshift.kinds import ModelSpec, Options, Score, Scorer

from .formatting import encode_pair



class HFScorerOptions(Options):
    batch_size: int = Field(8, ge=1)


def response_nll(loaded: Any, encoded: list[tuple[list[int], list[int]]], adapter_off: bool) -> list[list[float]]:
    """Per-token NLL of each response given its prompt (right padded batch, prompt and pad masked)."""
    import torch

    tok = loaded.tokenizer
    rows = [p + r for p, r in encoded]
    width = max(len(r) for r in rows)
    device = loaded.device
    input_ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    off = loaded.model.disable_adapter() if adapter_off else contextlib.nullcontext()
    with off:
        logits = loaded.model(input_ids=input_ids, attention_mask=mask).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    token_lp = logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    out = []
    for b, (p, r) in enumerate(encoded):
        out.append((-token_lp[b, len(p) - 1:len(p) - 1 + len(r)]).tolist())
    return out


class HFScorer(Scorer):
    name = "hf-scorer"
    default = True
    description = "transformers/peft perplexity of the answer under fine-tuned and base (one weights copy)"
    Options = HFScorerOptions

    def score(self, model: ModelSpec, pairs: list[tuple[str, str]]) -> list[Score]:
        import torch

        from .loading import base_of, load

        with torch.inference_mode():
            return self._score(pairs, load(model), base_of(model))

    def _score(self, pairs: list[tuple[str, str]], finetuned: Any, base: Any) -> list[Score]:
        out: list[Score] = []
        for start in range(0, len(pairs), self.options.batch_size):
            batch = pairs[start:start + self.options.batch_size]
            encoded = [encode_pair(finetuned.tokenizer, p, r) for p, r in batch]
            if any(not r for _, r in encoded):
                raise ValueError("a response encodes to no tokens; empty responses cannot be scored")
            nll_ft = response_nll(finetuned, encoded, adapter_off=False)
            nll_b = response_nll(base, encoded, adapter_off=finetuned.has_adapter)
            for ft, b in zip(nll_ft, nll_b):
                out.append(Score(nll_finetuned=sum(ft) / len(ft), nll_base=sum(b) / len(b), n_tokens=len(ft)))
        return out
