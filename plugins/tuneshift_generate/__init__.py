"""Built-in self-generation expander: a local model writes prompts like the best kept ones."""
