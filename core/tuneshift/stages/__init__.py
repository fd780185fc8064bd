"""One module per pipeline stage, in the order the method runs them.

seeds -> expand -> dedup -> answer -> score -> select, repeated per round;
then train -> evaluate. Each stage gets its implementation from the plugin
registry through the `Run` object and never imports a model library.
"""
