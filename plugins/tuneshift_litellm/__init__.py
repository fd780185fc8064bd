"""Built-in litellm expander: any hosted or local LLM writes prompts like the best kept ones."""
