"""`vllm-answerer`: answers prompts through the same vLLM-compatible servers as `vllm-scorer`.

Prompts are formatted and tokenised here as the in-process answerer does (the
model's chat template, or the plain template) and sent as token ids. The
teacher is asked by its served name; other models (the target that tuneshift
trains here) are mapped by `served`, or answered in process when
`local_fallback` is on.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneshift.api import Answer, Answerer, ModelSpec, RunError, Sampling, UsageError

from .client import ServerOptions, ServerPool, identity


class VLLMAnswererOptions(ServerOptions):
    finetuned_model: str = Field("ft", description="served name of the teacher (base + adapter)")
    base_model: str = Field("base", description="served name of the teacher's base")
    served: dict[str, str] = Field(default_factory=dict, description="other model paths -> served names")
    local_fallback: bool = Field(True, description="answer unserved models (the target) in process")
    prompts_per_request: int = Field(16, ge=1)


class VLLMAnswerer(Answerer):
    name = "vllm-answerer"
    description = "answers via vLLM-compatible /v1/completions (chat template applied here, token ids sent)"
    Options = VLLMAnswererOptions

    def identity(self) -> dict[str, Any]:
        return identity(self.name, self.options, {"local_fallback"})

    def served_name(self, model: ModelSpec) -> str | None:
        """Which served model has these weights: by files, whatever the prompt format (this answerer applies
        the format itself and sends token ids, so a request in another format, such as magpie's, is served)."""
        teacher = self.context.teacher
        files = (model.base, model.adapter, model.finetuned)
        if files == (teacher.base, teacher.adapter, teacher.finetuned):
            return self.options.finetuned_model
        if files == (teacher.base, None, None):
            return self.options.base_model
        return self.options.served.get(model.finetuned or model.adapter or model.base)

    def answer(self, model: ModelSpec, prompts: list[str], sampling: Sampling) -> list[Answer]:
        served = self.served_name(model)
        if served is None:
            if not self.options.local_fallback:
                raise UsageError(f"answerer {self.name}: no served name for {model.base}; add it to answerer.served")
            from tuneshift_hf.shared import HFAnswerer

            return HFAnswerer(HFAnswerer.Options(), self.context).answer(model, prompts, sampling)
        return self._remote(served, model, prompts, sampling)

    def _remote(self, served: str, model: ModelSpec, prompts: list[str], sampling: Sampling) -> list[Answer]:
        from tuneshift_hf.shared import before_stop, end_of_turn, prompt_text, tokenizer_of, uses_chat_template

        tok = tokenizer_of(model)  # asked in the format the model was fine-tuned in
        special = not uses_chat_template(tok)
        ids = [tok(prompt_text(tok, p), add_special_tokens=special)["input_ids"] for p in prompts]
        per = self.options.prompts_per_request
        bodies = [{"model": served, "prompt": ids[i:i + per], "max_tokens": sampling.max_new_tokens,
                   "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed,
                   "skip_special_tokens": True, **({"stop": list(sampling.stop)} if sampling.stop else {})}
                  for i in range(0, len(ids), per)]
        pool = ServerPool(self.options, f"answerer {self.name}", "answerer")
        try:
            replies = pool.completions(bodies, lambda i: self.context.progress(len(bodies[i]["prompt"])))
        finally:
            pool.close()
        answers: list[Answer] = []
        for body, reply in zip(bodies, replies):
            try:
                choices = sorted(reply["choices"], key=lambda c: c["index"])
                texts = [str(c["text"]) for c in choices]
            except (KeyError, TypeError):
                raise RunError(f"answerer {self.name}: the server's reply has no choices") from None
            if len(texts) != len(body["prompt"]):
                raise RunError(f"answerer {self.name}: sent {len(body['prompt'])} prompts, got {len(texts)} choices")
            answers += [Answer(before_stop(end_of_turn(tok, t.strip()), sampling.stop)) for t in texts]
        return answers
