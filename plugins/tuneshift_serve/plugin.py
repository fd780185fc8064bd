"""Adds the `serve` command; FastAPI, uvicorn and the models load only when it runs."""

from __future__ import annotations

import click

from tuneshift.api import UsageError, hookimpl


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--model", "model_path", required=True, help="Base model: a local directory, a .gguf file or a hub id.")
    @click.option("--adapter", "adapters", multiple=True, metavar="NAME=DIR", help="Serve a PEFT adapter as NAME.")
    @click.option("--name", default=None, help="The base model's name in requests (default: its file name).")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Interface; loopback unless told.")
    @click.option("--port", default=8000, show_default=True, type=int)
    @click.option("--api-key", default=None, envvar="TUNESHIFT_SERVE_API_KEY", help="Require this bearer key.")
    @click.option("--max-request-bytes", default=1 << 20, show_default=True, type=int)
    @click.option("--batch-wait-ms", default=10.0, show_default=True, type=float,
                  help="How long a request waits for others to share its batch.")
    def serve(model_path, adapters, name, host, port, api_key, max_request_bytes, batch_wait_ms):
        """OpenAI-compatible server: /v1/models, /v1/completions, /v1/chat/completions (vLLM's shapes)."""
        if not 1 <= port <= 65535:  # before anything loads
            raise UsageError(f"--port {port}: expected a port number from 1 to 65535")
        from .server import ServeConfig, run

        run(ServeConfig.build(model_path, adapters, name, api_key, max_request_bytes, batch_wait_ms), host, port)
