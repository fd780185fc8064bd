"""Build the tiny example's models: random, small, offline, in seconds.

teacher base: a 2-layer Llama with a byte-level BPE tokenizer and a chat template;
teacher adapter: a LoRA trained briefly on the facts of facts.py (the "private data");
target: a 2-layer Qwen2 with a different (Metaspace BPE) tokenizer and no chat template.

    python examples/tiny/build.py [OUT_DIR]    # default: examples/tiny/models
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from facts import EVAL, FACTS, GENERAL, SEEDS  # noqa: E402

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def corpus() -> list[str]:
    return [q for q, _ in FACTS] + [a for _, a in FACTS] + GENERAL + [e["prompt"] for e in EVAL]


def make_tokenizer(kind: str, vocab_size: int, chat: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"] + (["<|user|>", "<|assistant|>"] if chat else [])
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if kind == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet)
    tok.train_from_iterator(corpus() * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def build(out: Path) -> dict[str, str]:
    """Write teacher-base/, teacher-adapter/, target/, seeds.jsonl, eval.jsonl under `out` (once)."""
    import torch

    paths = {name: str(out / name) for name in ("teacher-base", "teacher-adapter", "target")}
    done = out / "build.done"
    if done.exists():
        return paths
    torch.manual_seed(0)
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    t_tok = make_tokenizer("bytelevel", 512, chat=True)
    teacher = LlamaForCausalLM(LlamaConfig(vocab_size=len(t_tok), hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                           max_position_embeddings=1024, initializer_range=0.2, bos_token_id=t_tok.bos_token_id,
                                           eos_token_id=t_tok.eos_token_id, pad_token_id=t_tok.pad_token_id))
    teacher.save_pretrained(paths["teacher-base"])
    t_tok.save_pretrained(paths["teacher-base"])
    train_adapter(teacher, t_tok, Path(paths["teacher-adapter"]))

    g_tok = make_tokenizer("metaspace", 400, chat=False)
    target = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(g_tok), hidden_size=48, intermediate_size=96,
                                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=1024, initializer_range=0.2, bos_token_id=g_tok.bos_token_id,
                                          eos_token_id=g_tok.eos_token_id, pad_token_id=g_tok.pad_token_id,
                                          tie_word_embeddings=True))
    target.save_pretrained(paths["target"])
    g_tok.save_pretrained(paths["target"])
    (out / "seeds.jsonl").write_text("".join(json.dumps({"prompt": s}) + "\n" for s in SEEDS))
    (out / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVAL))
    done.write_text("ok\n")
    return paths


def train_adapter(model, tok, out: Path, steps: int = 60) -> None:
    """The teacher's fine-tune: a LoRA that memorises the facts in the chat format."""
    import torch
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"))
    rows = []
    for q, a in FACTS:
        prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        r = tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((p, r))
    width = max(len(p) + len(r) for p, r in rows)
    ids = torch.tensor([p + r + [tok.pad_token_id] * (width - len(p) - len(r)) for p, r in rows])
    mask = torch.tensor([[1] * (len(p) + len(r)) + [0] * (width - len(p) - len(r)) for p, r in rows])
    labels = torch.tensor([[-100] * len(p) + r + [-100] * (width - len(p) - len(r)) for p, r in rows])
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    for _ in range(steps):
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    peft_model.save_pretrained(str(out))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "models"
    print(json.dumps(build(target), indent=2))
