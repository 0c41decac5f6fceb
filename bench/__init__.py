"""Benchmark harness for tuning methods on BERT-family encoders (see README.md)."""

SCHEMA_VERSION = 5  # the results file's columns (bench.results.KNOWN_HEADERS); recorded in every row
IDENTITY_VERSION = 1  # part of every run_id: bump only when what defines a run changes meaning
