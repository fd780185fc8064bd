import tuneshift


@tuneshift.hookimpl
def register_selectors(register):
    from .gap import PplDiff, PplRatio

    register(PplRatio)
    register(PplDiff)
