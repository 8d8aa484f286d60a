"""Images per second of the diffusers generator on the tiny test pipeline, by batch size.

    .venv/bin/python benchmarks/tiny_sd_throughput.py [--device cpu] [--steps 2]

Prints the best and median rate over repeated batches (after one warm-up batch per size), then
the size ``batch_size = "probe"`` chooses on requests of the largest size. The
tiny pipeline (fixtures/tiny-sd: 32 x 32 images, 2 steps, guidance 4) measures the generator's
own overhead (prompt encoding, per-image torch.Generator seeding, scheduler loop, gray
conversion), not a real model's cost.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pytest_synthcxr.models.generators.diffusers import DiffusersGenerator

TINY_SD = Path(__file__).parent.parent / "fixtures" / "tiny-sd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sizes", default="1,4,16,32,64,128")
    args = parser.parse_args()
    gen = DiffusersGenerator(TINY_SD, device=args.device, steps=args.steps, guidance=4.0, batch_size=1)
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        gen.batch_size = size
        gen.generate(["warm-up"] * size, list(range(size)))
        rates = []
        for _ in range(max(3, 64 // size)):
            t0 = time.perf_counter()
            gen.generate(["Hispanic female. Pleural effusion."] * size, list(range(size)))
            rates.append(size / (time.perf_counter() - t0))
        rates.sort()
        print(f"batch {size:4d}: best {rates[-1]:7.1f} images/s, median {rates[len(rates) // 2]:7.1f}", flush=True)
    # what batch_size = "probe" picks from the same sizes, on requests of the largest size
    probe = DiffusersGenerator(TINY_SD, device=args.device, steps=args.steps, guidance=4.0, batch_size="probe", probe_limit=max(sizes))
    for _ in range(8):
        if probe.probe.done:
            break
        probe.generate(["Hispanic female. Pleural effusion."] * max(sizes), list(range(max(sizes))))
    print(f"probe: {probe.probe.summary()}", flush=True)


if __name__ == "__main__":
    main()
