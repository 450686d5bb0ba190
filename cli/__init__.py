"""The `farm` command line (Typer + Rich): the top of the stack.

``trainfarm.cli`` may import every other part of trainfarm (shared, workers, beat); nothing imports it.
:mod:`trainfarm.cli.app` is its one composition root: it builds the app from the command modules, each of
which only defines commands (no module adds commands to another's app when it is imported).
"""
