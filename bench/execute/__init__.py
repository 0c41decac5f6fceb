"""Executing one run: ``loop.run_one`` (build, check, set up, restore, train, evaluate, measure), its
``callbacks``, ``measure`` (step timing, memory, matmul peak, other load), ``data`` (encoding and
batching), ``checkpoint`` (epoch snapshots, tensors and plain values only) and ``unit`` (one run from a
``bench.plan.RunSpec`` to its whole row, what every launcher calls)."""
