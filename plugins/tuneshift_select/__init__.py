"""Built-in selectors: the paper's perplexity gap (ratio, difference), calibrated, confident-gap, token-excess."""
