from tuneshift.api import hookimpl


@hookimpl
def register_selectors(register):
    from .calibrated import Calibrated
    from .confident import ConfidentGap
    from .consistent import Consistent
    from .excess import TokenExcess
    from .gap import PplDiff, PplRatio

    for selector in (PplRatio, PplDiff, Calibrated, ConfidentGap, TokenExcess, Consistent):
        register(selector)
