"""Built-in transformers/peft implementations: the teacher's answerer and scorer, and the LoRA trainer."""

from transformers.utils import logging as _hf_logging

_hf_logging.disable_progress_bar()  # tuneshift shows its own progress
