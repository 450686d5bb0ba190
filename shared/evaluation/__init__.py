"""Honest evaluation of a candidate: metrics, the trading book, the block bootstrap, the gates and plots."""
