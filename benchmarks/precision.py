"""bf16 against fp32 training-step speed, per method and packaged backbone, measured within one run.

For each backbone and method, one model per precision trains on the same fixed MR batch (32 sentences,
64 tokens at most, bucketed as the loop does); the fp32 and bf16 steps alternate, and the ratio is of the
median step times. Also the bf16 and fp32 matmul peaks (1024 x 1024) at the same thread count.

    python -m benchmarks.precision [--backbones minilm-l3,minilm-l6,mpnet-base] [--methods finetune,prompt]
                                   [--threads 2] [--steps 6] [--json out.json]

Run it on a quiet machine: nothing else should be running.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench.backbones import load_backbone
from bench.execute.data import encode_split, train_loader
from bench.execute.loop import seed_everything
from bench.execute.measure import matmul_peak_flops
from bench.tasks import load_task
from methods import METHODS, build


def step_closure(backbone: str, method: str, precision: str, batch: dict) -> callable:
    seed_everything(0)
    loaded = load_backbone(backbone)
    model = build(method, loaded.model, 2, precision=precision)
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

    def step() -> float:
        start = time.perf_counter()
        model.train_step(**batch)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="minilm-l3,minilm-l6,mpnet-base")
    parser.add_argument("--methods", default=",".join(m for m in METHODS if m != "peft-prefix"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peaks = {p: matmul_peak_flops(torch.device("cpu"), dtype=d) / 1e9
             for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"{args.threads} threads; matmul peak fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s "
          f"(x{peaks['bf16'] / peaks['fp32']:.2f})")
    task = load_task("mr")
    out = {"threads": args.threads, "peaks_gflops": peaks, "ratios": {}}
    for backbone in args.backbones.split(","):
        tokenizer = load_backbone(backbone).tokenizer
        data = encode_split(tokenizer, task.train.head(256), 64)
        batch = next(iter(train_loader(data, 32, 0, tokenizer.pad_token_id or 0, True)))
        for method in args.methods.split(","):
            steps = {p: step_closure(backbone, method, p, batch) for p in ("fp32", "bf16")}
            for p in steps:  # warm-up
                steps[p]()
            times = {p: [] for p in steps}
            for _ in range(args.steps):
                for p in steps:
                    times[p].append(steps[p]())
            fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
            out["ratios"][f"{backbone}/{method}"] = {"fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16}
            print(f"{backbone:11} {method:12} fp32 {fp32 * 1000:7.0f} ms  bf16 {bf16 * 1000:7.0f} ms  "
                  f"bf16 speed-up x{fp32 / bf16:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(out, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
