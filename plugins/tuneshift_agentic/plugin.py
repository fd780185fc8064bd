import tuneshift


@tuneshift.hookimpl
def register_expanders(register):
    from .agent import Agentic

    register(Agentic)
