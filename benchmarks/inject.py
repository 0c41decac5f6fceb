"""Proof that the regression check sees a slowdown in each layer: inject one, run the check in-process.

    python -m benchmarks.inject data                      # collation sleeps per batch
    python -m benchmarks.inject callback                  # a training callback sleeps per step
    python -m benchmarks.inject eval                      # the evaluation metric sleeps per batch
    python -m benchmarks.inject method-step --method M    # method M's training step sleeps
    python -m benchmarks.inject padding                   # every batch padded to the maximum length

Each patch lives only in this process and only while the check runs (nothing in the code base
changes). The sleeps are ``--delay-ms`` long (default 60 ms: on the check's small job, +35% to +100%
of the affected phase, past the check's 1.20x limit; the issue's example was 300 ms per batch). Every
injection but ``padding`` leaves the numbers alone, so the accuracy guard, which runs under the same
patch, must still reproduce; ``padding`` changes float summation and shows up in both.
Exit code: the check's (1 when it flags a regression, as it should).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator


def _slowed(function: Callable, seconds: float) -> Callable:
    @functools.wraps(function)  # keeps the signature: fastNLP matches batch keys against it
    def slow(*args, **kwargs):
        time.sleep(seconds)
        return function(*args, **kwargs)
    return slow


@contextlib.contextmanager
def _patched(owner: object, name: str, replacement: object) -> Iterator[None]:
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if original is None:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


def injection(layer: str, seconds: float, method: str | None) -> contextlib.AbstractContextManager:
    """The patch for ``layer``, active while the returned context is."""
    import bench.execute.callbacks
    import bench.execute.data

    if layer == "data":
        original = bench.execute.data.collate
        return _patched(bench.execute.data, "collate", lambda pad_id: _slowed(original(pad_id), seconds))
    if layer == "callback":
        hook = bench.execute.callbacks.LastEpochLoss.on_before_backward
        return _patched(bench.execute.callbacks.LastEpochLoss, "on_before_backward", _slowed(hook, seconds))
    if layer == "eval":
        update = bench.execute.callbacks.PredictionShare.update
        return _patched(bench.execute.callbacks.PredictionShare, "update", _slowed(update, seconds))
    if layer == "method-step":
        from methods import METHODS

        cls = METHODS[method].load()
        return _patched(cls, "train_step", _slowed(cls.train_step, seconds))
    if layer == "padding":
        original = bench.execute.data.collate

        def to_max_length(pad_id: int):
            pad = original(pad_id)

            def padded(items):
                batch = pad(items)
                width = 32 - batch["input_ids"].shape[1]  # the check's job truncates at 32 tokens
                if width > 0:
                    import torch
                    batch["input_ids"] = torch.nn.functional.pad(batch["input_ids"], (0, width), value=pad_id)
                    batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, width))
                return batch
            return padded
        return _patched(bench.execute.data, "collate", to_max_length)
    raise ValueError(layer)


LAYERS = ("method-step", "data", "callback", "eval", "padding")


def main(argv: list[str] | None = None) -> int:
    from benchmarks import check
    from methods import METHODS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.inject", description=__doc__.splitlines()[0])
    parser.add_argument("layer", choices=LAYERS)
    parser.add_argument("--method", help=f"with method-step: the method to slow ({', '.join(METHODS)})")
    parser.add_argument("--delay-ms", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=check.REPEATS)
    args = parser.parse_args(argv)
    if args.layer == "method-step" and args.method not in METHODS:
        parser.error(f"method-step needs --method, one of: {', '.join(METHODS)} (got {args.method!r})")
    print(f"injected: {args.layer}" + (f" ({args.method})" if args.layer == "method-step" else "")
          + ("" if args.layer == "padding" else f", {args.delay_ms:g} ms"), flush=True)
    with injection(args.layer, args.delay_ms / 1000, args.method):
        return check.main(["--repeats", str(args.repeats)])


if __name__ == "__main__":
    sys.exit(main())
