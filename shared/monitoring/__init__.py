"""Monitoring: retrain trigger policies, drift and skew measures, and which events become alerts."""
