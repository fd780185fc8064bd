"""The embedded demo: a fictional organisation, a SmolLM2 teacher that knows it, a Gemma 3 target."""
