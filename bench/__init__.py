"""Benchmarks (`make bench`): ratios measured within one run, because these machines are noisy."""
