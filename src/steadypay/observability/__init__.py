"""Metrics, logs and health: what an operator sees of steadypay."""
