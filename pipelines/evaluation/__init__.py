"""Judging models: metrics, splits, the gate's window, bootstrap, explanation checks, benchmarks."""
