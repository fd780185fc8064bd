"""Built-in `tuneshift serve`: an OpenAI-compatible HTTP server over the transformers backend."""
