"""`python -m shared.cli` runs the `farm` command line."""

from shared.cli import main

main()
