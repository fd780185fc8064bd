"""Registers the transformers/peft implementations, exactly as a third-party plugin would."""

from tuneshift.api import hookimpl


@hookimpl
def register_answerers(register):
    from .answering import HFAnswerer

    register(HFAnswerer)


@hookimpl
def register_scorers(register):
    from .scoring import HFScorer

    register(HFScorer)


@hookimpl
def register_trainers(register):
    from .training import LoRATrainer

    register(LoRATrainer)
