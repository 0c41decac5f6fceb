"""Recording a run: the schema as one table (``schema``), the append-only results file (``store``) and
the run's provenance, machine and code (``provenance``). Nothing here imports torch at import time."""
