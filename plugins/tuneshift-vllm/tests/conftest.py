"""A tiny random teacher (Llama + chat-template tokenizer + random LoRA) and `tuneshift serve` on loopback.

Built in the test, offline, in seconds; the LoRA starts random (not zero) so
the adapter's scores differ from the base's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
TEXT = ["What is the capital of Zorbia?", "The capital of Zorbia is Velmora.", "Who wrote the Book of Sand?",
        "Hello! How can I help you today?", "Rivers flow to the sea and mountains rise above the plain."]


@pytest.fixture(scope="session")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator(TEXT * 3, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")
    fast.chat_template = CHAT
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=256, initializer_range=0.2,
                                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id))
    base, adapter = out / "base", out / "adapter"
    model.save_pretrained(base)
    fast.save_pretrained(base)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    lora.save_pretrained(adapter)
    return {"base": str(base), "adapter": str(adapter)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(teacher: dict[str, str]) -> Iterator[str]:
    """`tuneshift serve` with the teacher as "base" and its adapter as "ft"; yields the /v1 URL."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tuneshift",
                             "serve", "--model", teacher["base"], "--name", "base", "--adapter",
                             f"ft={teacher['adapter']}", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read()[-2000:])
            try:
                httpx.get(f"{url}/health").raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def server(teacher: dict[str, str]) -> Iterator[str]:
    with serve(teacher) as url:
        yield url


@pytest.fixture(scope="session")
def second_server(teacher: dict[str, str]) -> Iterator[str]:
    with serve(teacher) as url:
        yield url


def served_requests(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/health").json()["requests"]


@pytest.fixture
def work_dir(tmp_path: Path) -> str:
    return str(tmp_path)
