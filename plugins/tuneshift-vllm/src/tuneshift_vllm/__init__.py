"""tuneshift-vllm: the scorer and answerer that reach vLLM (or `tuneshift serve`) over HTTP."""

__version__ = "0.1.0"
