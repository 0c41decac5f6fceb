"""Throughput benchmarks and the regression check (see check.py)."""
