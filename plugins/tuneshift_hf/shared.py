"""What other plugins may use of the transformers layer: the one module of a built-in plugin that another
plugin may import (tests/test_boundary.py holds every plugin to that).

serve and tuneshift-vllm tokenise, prompt and load models exactly as the hf
implementations do, so a served or vLLM-run model sees the prompts the
pipeline trained and scored it on; the trl-sft trainer takes peft-lora's
tokenisation, held-out slice and precision from here, so both train on the
same tokens and write the same adapter layout.
"""

from __future__ import annotations

from tuneshift_hf.answering import HFAnswerer, context_limit, stop_token_ids
from tuneshift_hf.batching import plan_batches
from tuneshift_hf.checks import check_spec, has_chat_template
from tuneshift_hf.formatting import (PLAIN_TEMPLATE, before_stop, encode_pair, end_of_turn, plain_chat_template,
                                     prompt_text, span_weights, uses_chat_template)
from tuneshift_hf.loading import _first_reason as load_error_reason
from tuneshift_hf.loading import check_adapter, clear, load_causal_lm, load_tokenizer, tokenizer_of
from tuneshift_hf.precision import resolve_precision
from tuneshift_hf.scoring import HEAD_ELEMENTS, HFScorer, capture_head_input
from tuneshift_hf.training import split_held_out

__all__ = ["HFAnswerer", "HFScorer", "context_limit", "stop_token_ids", "plan_batches", "check_spec",
           "PLAIN_TEMPLATE", "before_stop", "encode_pair", "end_of_turn", "prompt_text", "load_error_reason", "check_adapter",
           "clear", "load_causal_lm", "load_tokenizer", "HEAD_ELEMENTS", "capture_head_input", "tokenizer_of",
           "uses_chat_template", "has_chat_template", "plain_chat_template", "span_weights", "resolve_precision", "split_held_out"]
