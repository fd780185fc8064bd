from tuneshift.api import hookimpl


@hookimpl
def register_expanders(register):
    from .magpie import Magpie
    from .self_generate import SelfGenerate

    register(SelfGenerate)
    register(Magpie)
