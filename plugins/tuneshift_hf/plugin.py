"""Registers the transformers/peft implementations, exactly as a third-party plugin would."""

import tuneshift


@tuneshift.hookimpl
def register_answerers(register):
    from .answering import HFAnswerer

    register(HFAnswerer)


@tuneshift.hookimpl
def register_scorers(register):
    from .scoring import HFScorer

    register(HFScorer)


@tuneshift.hookimpl
def register_trainers(register):
    from .training import LoRATrainer

    register(LoRATrainer)
