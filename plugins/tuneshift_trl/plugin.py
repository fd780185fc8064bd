"""Registers the trl-sft trainer, exactly as a third-party plugin would (TRL itself loads only when it trains)."""

from tuneshift.api import Register, hookimpl


@hookimpl
def register_trainers(register: Register) -> None:
    from .sft import TrlSft

    register(TrlSft)
