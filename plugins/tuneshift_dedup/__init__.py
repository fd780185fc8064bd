"""Built-in exact deduplication: prompts equal after normalisation are duplicates."""
