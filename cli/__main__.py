"""`python -m trainfarm.cli` runs the `farm` command line."""

from trainfarm.cli import main

main()
