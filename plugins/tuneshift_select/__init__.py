"""Built-in selectors: the paper's perplexity gap in ratio and difference form."""
