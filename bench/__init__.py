"""Benchmark harness for tuning methods on BERT-family encoders (see README.md)."""

import sys as _sys

IDENTITY_VERSION = 1  # part of every run_id: bump only when what defines a run changes meaning

if _sys.argv[:1] == ["-m"]:  # python -m bench...: Ctrl-C from the first moment is one line (bench.startup)
    from bench.startup import guard_start, started_as_bench

    if started_as_bench():
        guard_start()
