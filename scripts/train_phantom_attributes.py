#!/usr/bin/env python
"""Train the phantom attribute judge (sex and age) and write
src/pytest_synthcxr/judges/phantom_attributes.safetensors.

The phantom renderer draws sex (rib-cage and shoulder width, breast shadows) and age (aortic
knob, mediastinal width, bone density); it draws no race, so this judge has no race output. Same
network as the phantom judge (PhantomNet) with two outputs: a logit for female, and the age as
(age - AGE_CENTER) / AGE_SCALE. Loss: binary cross-entropy plus mean squared error.

Reproducible from --seed: image i of split s is rendered from ``numpy.random.default_rng([seed,
s, i])`` with splits 4 (training) and 5 (validation), disjoint from the phantom judge's (0, 1) and
the tests' (3); torch is seeded, deterministic, with a fixed number of threads.

Usage (about 4 minutes on 2 otherwise idle CPU cores; the packaged weights: --seed 0, defaults):
    PYTHONPATH=src python scripts/train_phantom_attributes.py --seed 0
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytest_synthcxr.models.judges.phantom_attributes import AGE_CENTER, AGE_SCALE, FORMAT  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_phantom_judge  # noqa: E402  (its options, renderer loop, training loop and validation pass)
from pytest_synthcxr.phantom.render import RENDERER_VERSION, random_scene, render  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "pytest_synthcxr" / "judges" / "phantom_attributes.safetensors"
TRAIN, VAL = 4, 5
#: the scenes: as the phantom judge's, so findings and noise vary under the attributes
DISTRIBUTION = {"p_finding": 0.3, "p_probe": 0.2, "severity": [0.3, 1.3], "noise": [0.0, 0.06], "age": [25, 85]}


def render_item(seed: int, split: int, index: int, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """(2 x 2 average-pooled image float32 (size/2, size/2), [female 0/1, age in years])."""
    rng = np.random.default_rng([seed, split, index])
    d = DISTRIBUTION
    scene = random_scene(rng, p_finding=d["p_finding"], p_probe=d["p_probe"], severity=tuple(d["severity"]), noise=tuple(d["noise"]), age=tuple(d["age"]))
    image = render(scene, rng, size)
    pooled = image.reshape(size // 2, 2, size // 2, 2).mean(axis=(1, 3), dtype=np.float32)
    return pooled, np.array([scene.sex == "female", scene.age], dtype=np.float32)


def render_split(seed: int, split: int, n: int, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """n images of a split (the phantom judge's renderer loop); independent of the worker count."""
    return train_phantom_judge.render_split(seed, split, n, workers, item=render_item)


def main(argv: list[str] | None = None) -> int:
    args = train_phantom_judge.parse_args(argv, __doc__, n_train=12000, n_val=2000, epochs=4, out=DEFAULT_OUT)

    t0 = time.perf_counter()
    xs, ys = render_split(args.seed, TRAIN, args.n_train, args.threads)
    xv, yv = render_split(args.seed, VAL, args.n_val, args.threads)
    print(f"rendered {len(xs)} + {len(xv)} phantoms in {time.perf_counter() - t0:.0f} s", flush=True)

    import torch
    from safetensors.torch import save_file
    from torch.nn import functional as F

    from pytest_synthcxr.models.judges.phantom_net import PhantomNet

    net = train_phantom_judge.seeded_net(PhantomNet, 2, args)
    n_params = sum(p.numel() for p in net.parameters())
    targets = np.column_stack([ys[:, 0], (ys[:, 1] - AGE_CENTER) / AGE_SCALE]).astype(np.float32)  # female, scaled age

    def loss_of(out, y):
        return F.binary_cross_entropy_with_logits(out[:, 0], y[:, 0]) + F.mse_loss(out[:, 1], y[:, 1])

    train_phantom_judge.fit(net, xs, targets, loss_of, args, t0)
    out = train_phantom_judge.predict_split(net, xv, lambda y: y)
    p_female = 1 / (1 + np.exp(-out[:, 0]))
    predicted_age = AGE_CENTER + AGE_SCALE * out[:, 1]
    error = predicted_age - yv[:, 1]
    validation = {
        "sex_accuracy": round(float(((p_female > 0.5) == (yv[:, 0] > 0.5)).mean()), 5),
        "age_mae": round(float(np.abs(error).mean()), 4),
        "age_mean_error": round(float(error.mean()), 4),
        "age_within_16": round(float((np.abs(error) <= 16).mean()), 5),
        "age_within_8": round(float((np.abs(error) <= 8).mean()), 5),
    }
    print("validation:", json.dumps(validation))

    tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    training = {
        "n_train": args.n_train,
        "n_val": args.n_val,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "optimizer": "AdamW + OneCycleLR(pct_start=0.15)",
        "loss": "binary cross-entropy (female) + mean squared error ((age - center) / scale)",
        "threads": args.threads,
        "distribution": DISTRIBUTION,
        "image_entropy": f"numpy default_rng([seed, split, index]); split {TRAIN} train, {VAL} validation",
        "renderer": RENDERER_VERSION,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    metadata = {
        "format": FORMAT,
        "seed": str(args.seed),
        "outputs": json.dumps(["sex:male", "sex:female", "age"]),
        "age": json.dumps({"center": AGE_CENTER, "scale": AGE_SCALE, "trained_range": DISTRIBUTION["age"]}),
        "architecture": json.dumps({"name": "PhantomNet", "width": args.width, "parameters": n_params}),
        "training": json.dumps(training, sort_keys=True),
        "validation": json.dumps(validation, sort_keys=True),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=metadata)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1024:.0f} KiB, {n_params} parameters) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
