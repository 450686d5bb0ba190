"""Datasets: causal features, labels, purged chronological splits and the content-hashed snapshot."""
