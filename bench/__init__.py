"""Benchmark harness for tuning methods on BERT-family encoders (see README.md)."""

SCHEMA_VERSION = 1
