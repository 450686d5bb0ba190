"""`python -m trainfarm.cli` runs the `farm` command line."""

from trainfarm.cli.app import main

main()
