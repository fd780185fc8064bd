from tuneshift.api import hookimpl


@hookimpl
def register_expanders(register):
    from .self_generate import SelfGenerate

    register(SelfGenerate)
