"""`vllm-scorer`: the perplexity gap from a vLLM-compatible server's prompt log-probabilities.

Each (prompt, response) is tokenised here, with the model's own tokenizer and
chat template exactly as the in-process scorer does, and sent as token ids, so
the server cannot re-tokenise it differently. The server returns, for every
position, the log-probability of the token actually there (the first
position has none: nothing predicts it); the response's positions give its
NLL. The fine-tuned score asks for the adapter's served name, the base score
for the base's, from the same server (vLLM `--enable-lora --lora-modules`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tuneshift.api import ModelSpec, RunError, Score, Scorer

from .client import ServerOptions, ServerPool, identity


class VLLMScorerOptions(ServerOptions):
    finetuned_model: str = Field("ft", description="served name of the fine-tuned model (the LoRA module)")
    base_model: str = Field("base", description="served name of the base model")
    tokenizer: str | None = Field(None, description="tokenizer directory (default: the teacher's base)")
    pairs_per_request: int = Field(16, ge=1)
    mode: Literal["prompt_logprobs", "echo"] = Field(
        "prompt_logprobs", description="vLLM's prompt_logprobs field, or echo with logprobs (OpenAI style)")
    token_logprobs: bool = Field(False, description="add per-token log-probabilities to Score.extra")


class VLLMScorer(Scorer):
    name = "vllm-scorer"
    description = "perplexity gap via vLLM-compatible /v1/completions (token ids in, prompt logprobs out)"
    Options = VLLMScorerOptions

    def identity(self) -> dict[str, Any]:
        return identity(self.name, self.options)

    def score(self, model: ModelSpec, pairs: list[tuple[str, str]]) -> list[Score]:
        from tuneshift_hf.shared import encode_pair, load_tokenizer, tokenizer_of

        o = self.options
        tokenizer = (load_tokenizer(o.tokenizer, model.trust_remote_code) if o.tokenizer
                     else tokenizer_of(model))  # the format the model was fine-tuned in
        encoded = [encode_pair(tokenizer, p, r) for p, r in pairs]
        if any(not p or not r for p, r in encoded):
            raise RunError(f"scorer {self.name}: a prompt or response encodes to no tokens")
        chunks = [list(range(i, min(i + o.pairs_per_request, len(pairs))))
                  for i in range(0, len(pairs), o.pairs_per_request)]
        bodies = [self._body(served, [encoded[i] for i in chunk])
                  for chunk in chunks for served in (o.finetuned_model, o.base_model)]
        finished = [0] * len(chunks)

        def done(request: int) -> None:
            finished[request // 2] += 1
            if finished[request // 2] == 2:
                self.context.progress(len(chunks[request // 2]))

        pool = ServerPool(o, f"scorer {self.name}", "scorer")
        try:
            replies = pool.completions(bodies, done)
        finally:
            pool.close()
        scores: list[Score] = []
        for k, chunk in enumerate(chunks):
            ft, base = (self._read(replies[2 * k + m], [encoded[i] for i in chunk]) for m in (0, 1))
            scores += [self._score(a, b) for a, b in zip(ft, base)]
        return scores

    def _body(self, served: str, rows: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": served, "prompt": [p + r for p, r in rows], "max_tokens": 1,
                                "temperature": 0.0}
        if self.options.mode == "echo":
            return {**body, "echo": True, "logprobs": 0}
        return {**body, "prompt_logprobs": 0}

    def _read(self, reply: dict[str, Any], rows: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """The response tokens' log-probabilities of each row, looked up by the actual token id."""
        try:
            choices = sorted(reply["choices"], key=lambda c: c["index"])
        except (KeyError, TypeError):
            raise RunError(f"scorer {self.name}: the server's reply has no choices") from None
        if len(choices) != len(rows):
            raise RunError(f"scorer {self.name}: sent {len(rows)} prompts, got {len(choices)} choices")
        return [self._response_logprobs(choice, prompt, response)
                for choice, (prompt, response) in zip(choices, rows)]

    def _response_logprobs(self, choice: dict[str, Any], prompt: list[int], response: list[int]) -> list[float]:
        ids = prompt + response
        try:
            if self.options.mode == "echo":
                values = choice["logprobs"]["token_logprobs"][:len(ids)]
            else:
                entries = choice["prompt_logprobs"][:len(ids)]
                values = [None if e is None else e[str(t)]["logprob"] for e, t in zip(entries, ids)]
        except (KeyError, TypeError):
            raise RunError(f"scorer {self.name}: the server returned no log-probability for the actual tokens "
                           f"(is this a vLLM-compatible /v1/completions?)") from None
        out = values[len(prompt):]
        if len(out) != len(response) or any(v is None for v in out):
            raise RunError(f"scorer {self.name}: {len(out)} log-probabilities for {len(response)} response tokens")
        return [float(v) for v in out]

    def _score(self, finetuned: list[float], base: list[float]) -> Score:
        n = len(finetuned)
        extra = {"token_logprobs_finetuned": finetuned, "token_logprobs_base": base} if self.options.token_logprobs \
            else {}
        return Score(nll_finetuned=-sum(finetuned) / n, nll_base=-sum(base) / n, n_tokens=n, extra=extra)
