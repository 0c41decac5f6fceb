"""Loop speed figures, each a ratio measured within one run (A and B interleaved, medians):

1. fastNLP loop overhead: one epoch through the harness's fastNLP ``Trainer`` against a plain PyTorch
   loop over the very same batches, model and optimizer settings (target: at most 3%), two ways:
   the paired ratio of epoch times, and an in-epoch account that subtracts the time spent inside the
   work both loops share (the model's forward, ``backward``, the optimizer's ``step``) from each
   epoch, so what is left is the loop's own time (fetching and collating batches, zeroing gradients,
   callbacks). Noise in the work cancels in the second, which is why it resolves a few percent on a
   shared machine where the first cannot.
2. Length bucketing: one training epoch on MR with length-bucketed batches against random batches,
   and sorted against random evaluation batches.
3. The machine's fp32 matmul peak at the pinned thread count, for scale.

    python -m benchmarks.speed [--backbone minilm-l3] [--threads 2] [--repeats 5] [--json out.json]

Run it on a quiet machine: nothing else should be running.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time

import torch
from fastNLP import Trainer
from fastNLP import logger as fastnlp_logger

from bench.backbones import load_backbone
from bench.execute.data import encode_split, eval_loader, train_loader
from bench.execute.loop import seed_everything
from bench.execute.measure import matmul_peak_flops
from bench.tasks import load_task
from methods import build


def _model(backbone: str, method: str):
    seed_everything(0)
    loaded = load_backbone(backbone)
    return build(method, loaded.model, 2), loaded.tokenizer


class WorkClock:
    """Adds up the seconds spent inside the calls it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function):
        @functools.wraps(function)  # keeps the signature: fastNLP matches batch keys against it
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


@contextlib.contextmanager
def _shared_work_timed(model, optimizer, clock: WorkClock):
    """Time the model's forward, every ``Tensor.backward`` and the optimizer's step, whoever calls them."""
    backward = torch.Tensor.backward
    model.train_step = clock.wrap(model.train_step)
    optimizer.step = clock.wrap(optimizer.step)
    torch.Tensor.backward = clock.wrap(backward)
    try:
        yield
    finally:
        torch.Tensor.backward = backward
        del model.train_step, optimizer.step  # the instance attributes; the methods show through again


def _plain_epoch(model, loader, lr: float) -> tuple[float, float]:
    """Returns (epoch seconds, seconds inside the shared work)."""
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
    clock = WorkClock()
    model.train()
    with _shared_work_timed(model, optimizer, clock):
        start = time.perf_counter()
        for batch in loader:
            model.train_step(**batch)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start, clock.seconds


def _fastnlp_epoch(model, loader, lr: float) -> tuple[float, float]:
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=lr)
    clock = WorkClock()
    with _shared_work_timed(model, optimizer, clock):
        trainer = Trainer(model=model, driver="torch", device="cpu", train_dataloader=loader,
                          optimizers=optimizer, n_epochs=1, progress_bar=None,
                          torch_kwargs={"set_grad_to_none": True})
        start = time.perf_counter()
        trainer.run()
        return time.perf_counter() - start, clock.seconds


def _eval_pass(model, loader) -> float:
    model.eval()
    start = time.perf_counter()
    for batch in loader:
        model.evaluate_step(**batch)
    return time.perf_counter() - start


def _time_epochs(model, data, eval_data, pad: int, repeats: int) -> tuple[dict[str, list[float]], dict]:
    """Per repeat, interleaved: a plain and a fastNLP epoch on identical batches (order alternating), bucketed
    and random batches, sorted and random evaluation. Returns the seconds of each and the shared work's."""
    lr = 1e-6  # tiny: the model barely moves between repeats, so each epoch does the same work
    times: dict[str, list[float]] = {k: [] for k in ("plain", "fastnlp", "bucketed", "random", "eval_sorted",
                                                     "eval_random")}
    work: dict[str, list[float]] = {"plain": [], "fastnlp": []}
    _plain_epoch(model, train_loader(data, 32, 0, pad), lr)  # warm-up
    for repeat in range(repeats):
        # same seed: identical batches for the plain and the fastNLP epoch
        pair = [("plain", _plain_epoch), ("fastnlp", _fastnlp_epoch)]
        for name, run in pair if repeat % 2 == 0 else pair[::-1]:
            epoch_s, work_s = run(model, train_loader(data, 32, repeat, pad), lr)
            times[name].append(epoch_s)
            work[name].append(work_s)
        for name, bucketing in (("bucketed", True), ("random", False)):
            times[name].append(_plain_epoch(model, train_loader(data, 32, repeat, pad, bucketing), lr)[0])
        times["eval_sorted"].append(_eval_pass(model, eval_loader(eval_data, 64, pad)))
        random_eval = train_loader(eval_data, 64, repeat, pad, bucketing=False)
        times["eval_random"].append(_eval_pass(model, random_eval))
        print(f"repeat {repeat + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
              flush=True)
    return times, work


def _figures(args: argparse.Namespace, times: dict[str, list[float]], work: dict[str, list[float]]) -> dict:
    """Medians and paired ratios of the timed epochs (what ``--json`` writes)."""
    median = {k: statistics.median(v) for k, v in times.items()}

    def paired(a: str, b: str) -> float:
        """Median over repeats of a/b measured back to back: drift between repeats cancels."""
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    # the loop's own seconds (epoch minus shared work); fastNLP's minus plain's, as a share of a plain epoch
    own_seconds = {k: [t - w for t, w in zip(times[k], work[k], strict=True)] for k in work}
    own_overhead = [(f - p) / t for f, p, t in zip(own_seconds["fastnlp"], own_seconds["plain"], times["plain"],
                                                   strict=True)]
    return {
        "backbone": args.backbone, "method": args.method, "threads": args.threads, "repeats": args.repeats,
        "examples": args.examples, "torch": torch.__version__,
        "fastnlp_overhead_pct": round(100 * (paired("fastnlp", "plain") - 1), 2),
        "fastnlp_overhead_pct_per_repeat": [round(100 * (x / y - 1), 2)
                                            for x, y in zip(times["fastnlp"], times["plain"], strict=True)],
        "fastnlp_own_overhead_pct": round(100 * statistics.median(own_overhead), 2),
        "fastnlp_own_overhead_pct_per_repeat": [round(100 * x, 2) for x in own_overhead],
        "loop_own_seconds_median": {k: round(statistics.median(own_seconds[k]), 3) for k in work},
        "bucketing_speedup": round(paired("random", "bucketed"), 3),
        "sorted_eval_speedup": round(paired("eval_random", "eval_sorted"), 3),
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "matmul_peak_gflops": round(matmul_peak_flops(torch.device("cpu")) / 1e9, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="minilm-l3")
    parser.add_argument("--method", default="finetune")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--examples", type=int, default=640, help="MR training examples per epoch")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fastnlp_logger.setLevel("ERROR")
    task = load_task("mr")
    model, tokenizer = _model(args.backbone, args.method)
    pad = tokenizer.pad_token_id or 0
    data = encode_split(tokenizer, task.train.head(args.examples), 64)
    eval_data = encode_split(tokenizer, task.eval, 64)
    figures = _figures(args, *_time_epochs(model, data, eval_data, pad, args.repeats))
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2, sort_keys=True)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
