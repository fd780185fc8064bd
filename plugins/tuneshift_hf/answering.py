"""Answer prompts with a transformers model: batched, left padded, greedy or sampled."""

from __future__ import annotations

from pydantic import Field

from tuneshift.kinds import Answer, Answerer, ModelSpec, Options, Sampling

from .formatting import prompt_text



class HFAnswererOptions(Options):
    batch_size: int = Field(8, ge=1)


def stop_ids(loaded) -> list[int]:
    """End of turn: the tokenizer's EOS and whatever the model's generation config calls EOS."""
    configured = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return sorted({i for i in [loaded.tokenizer.eos_token_id, *ids] if isinstance(i, int)})


class HFAnswerer(Answerer):
    name = "hf-answerer"
    default = True
    description = "transformers generation (the teacher, the target), chat template or a plain one"
    Options = HFAnswererOptions

    def answer(self, model: ModelSpec, prompts: list[str], sampling: Sampling) -> list[Answer]:
        from .loading import load

        loaded = load(model)
        tok = loaded.tokenizer
        out: list[Answer] = []
        limit = getattr(loaded.model.config, "max_position_embeddings", None) or 10**9
        for start in range(0, len(prompts), self.options.batch_size):
            batch = prompts[start:start + self.options.batch_size]
            texts = [prompt_text(tok, p) for p in batch]
            has_template = bool(getattr(tok, "chat_template", None))
            ids = [tok(t, add_special_tokens=not has_template)["input_ids"] for t in texts]
            fits = [len(i) + sampling.max_new_tokens <= limit for i in ids]
            runnable = [i for i, ok in zip(ids, fits) if ok]
            generated = iter(self._generate(loaded, runnable, sampling) if runnable else [])
            for i, ok in zip(ids, fits):
                out.append(Answer(next(generated)) if ok else
                           Answer(None, f"prompt too long: {len(i)} tokens + {sampling.max_new_tokens} "
                                        f"new exceed the context of {limit}"))
        return out

    def _generate(self, loaded, ids: list[list[int]], sampling: Sampling) -> list[str]:
        import torch

        tok = loaded.tokenizer
        width = max(len(i) for i in ids)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids], device=loaded.device)
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=loaded.device)
        kwargs = {"do_sample": False}
        if sampling.temperature > 0:
            torch.manual_seed(sampling.seed)
            kwargs = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        stop = stop_ids(loaded)
        with torch.inference_mode():
            output = loaded.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=sampling.max_new_tokens,
                                           pad_token_id=pad, eos_token_id=stop or None, **kwargs)
        return [tok.decode(row[width:], skip_special_tokens=True).strip() for row in output]
