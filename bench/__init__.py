"""Benchmarks (`make bench`; `python -m bench NAME` for one): where speed is measured, never in the tests.

Absolute figures depend on the machine; the farm benchmark reports a ratio measured within one run,
because these machines are noisy.
"""
