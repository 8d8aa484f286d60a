#!/usr/bin/env python
"""Train the phantom judge and write src/pytest_synthcxr/judges/phantom_judge.safetensors.

Everything is reproducible from --seed: image i of split s is rendered from
``numpy.random.default_rng([seed, s, i])`` (scene and pixels), torch is seeded, runs with a fixed
number of threads and deterministic algorithms, and batches are shuffled by a seeded generator.
Splits: 0 = training, 1 = validation (calibration of the operating points). Tests render their
held-out phantoms from other entropy ([test_seed, 3, i]), so they never see these images.

The operating point of each output is the threshold on the sigmoid probability that maximises
Youden's J (sensitivity + specificity - 1) on the validation split; it is stored as the tensor
``op_threshs``, and the judge rescales probabilities so that this point sits at 0.5.

Usage (about 8-9 minutes on 2 otherwise idle CPU cores; the packaged weights: --seed 0, defaults):
    PYTHONPATH=src python scripts/train_phantom_judge.py --seed 0
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pytest_synthcxr.phantom.render import NAMES, RENDERER_VERSION, random_scene, render  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "pytest_synthcxr" / "judges" / "phantom_judge.safetensors"
TRAIN, VAL = 0, 1
#: the training distribution of scenes (see random_scene)
DISTRIBUTION = {"p_finding": 0.3, "p_probe": 0.2, "severity": [0.3, 1.3], "noise": [0.0, 0.08], "age": [25, 85]}


def _scene_kwargs() -> dict:
    d = DISTRIBUTION
    return {
        "p_finding": d["p_finding"],
        "p_probe": d["p_probe"],
        "severity": tuple(d["severity"]),
        "noise": tuple(d["noise"]),
        "age": tuple(d["age"]),
    }


def render_item(seed: int, split: int, index: int, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """(2 x 2 average-pooled image float32 (size/2, size/2), labels float32 (len(NAMES),))."""
    rng = np.random.default_rng([seed, split, index])
    scene = random_scene(rng, **_scene_kwargs())
    image = render(scene, rng, size)
    pooled = image.reshape(size // 2, 2, size // 2, 2).mean(axis=(1, 3), dtype=np.float32)
    labels = np.array([name in scene.findings for name in NAMES], dtype=np.float32)
    return pooled, labels


def _render_range(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    item, seed, split, start, stop = args
    xs = np.empty((stop - start, 112, 112), dtype=np.float16)
    ys: np.ndarray | None = None
    for k, i in enumerate(range(start, stop)):
        x, y = item(seed, split, i)
        if ys is None:
            ys = np.empty((stop - start, len(y)), dtype=np.float32)
        xs[k], ys[k] = x, y
    return xs, ys


def render_split(seed: int, split: int, n: int, workers: int, item=render_item) -> tuple[np.ndarray, np.ndarray]:
    """Render n images of a split with `item(seed, split, index) -> (pooled image, labels)`; the
    result does not depend on the number of workers."""
    step = 500
    jobs = [(item, seed, split, a, min(n, a + step)) for a in range(0, n, step)]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_render_range, jobs)
    else:
        parts = [_render_range(j) for j in jobs]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank (Mann-Whitney) formula, ties counted half."""
    from scipy.stats import rankdata

    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def youden_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Threshold t (positive iff score > t) maximising sensitivity + specificity - 1; (t, J).

    Candidates are the midpoints between consecutive distinct scores (with separated classes:
    the midpoint between the highest negative and the lowest positive).
    """
    labels = labels.astype(bool)
    values = np.unique(scores)
    cands = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    pos, neg = np.sort(scores[labels]), np.sort(scores[~labels])
    tpr = 1.0 - np.searchsorted(pos, cands, side="right") / max(len(pos), 1)
    fpr = 1.0 - np.searchsorted(neg, cands, side="right") / max(len(neg), 1)
    j = tpr - fpr
    best = int(np.argmax(j))
    return float(np.clip(cands[best], 1e-6, 1 - 1e-6)), float(j[best])


def seeded_net(cls, n_outputs: int, args: argparse.Namespace):
    """A fresh network from the seeded global torch generator, with fixed threads and
    deterministic algorithms (call before anything else draws from torch's generator)."""
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    return cls(n_outputs, width=args.width)


def fit(net, xs: np.ndarray, ys: np.ndarray, loss_of, args: argparse.Namespace, t0: float) -> None:
    """Train `net` on the pooled images `xs` and targets `ys` with `loss_of(output, targets)`:
    AdamW, a OneCycle schedule, batches drawn by a generator seeded from --seed."""
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(xs) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    shuffle = torch.Generator().manual_seed(args.seed)
    x_train, y_train = torch.from_numpy(xs), torch.from_numpy(ys)
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(len(xs), generator=shuffle)
        total = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size : (b + 1) * args.batch_size]
            x = x_train[idx].float().unsqueeze(1)
            loss = loss_of(net.forward_work(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / steps_per_epoch:.4f}"
            f" ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    net.eval()


def predict_split(net, xv: np.ndarray, head) -> np.ndarray:
    """`head(net output)` for the pooled images `xv`, in passes of 256, as float64."""
    import torch

    with torch.inference_mode():
        xv_t = torch.from_numpy(xv)
        return torch.cat([head(net.forward_work(xv_t[i : i + 256].float().unsqueeze(1))) for i in range(0, len(xv), 256)]).double().numpy()


def parse_args(argv: list[str] | None, doc: str, *, n_train: int, n_val: int, epochs: int, out: Path) -> argparse.Namespace:
    """The training options both phantom-network scripts take (their own defaults for size and output)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=n_train)
    ap.add_argument("--n-val", type=int, default=n_val)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="torch threads and render workers")
    ap.add_argument("--out", type=Path, default=out)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__, n_train=24000, n_val=4000, epochs=5, out=DEFAULT_OUT)

    t0 = time.perf_counter()
    xs, ys = render_split(args.seed, TRAIN, args.n_train, args.threads)
    xv, yv = render_split(args.seed, VAL, args.n_val, args.threads)
    t_render = time.perf_counter() - t0
    print(f"rendered {len(xs)} + {len(xv)} phantoms in {t_render:.0f} s", flush=True)

    import torch
    from safetensors.torch import save_file
    from torch.nn import functional as F

    from pytest_synthcxr.models.judges.phantom_net import PhantomNet

    net = seeded_net(PhantomNet, len(NAMES), args)
    n_params = sum(p.numel() for p in net.parameters())
    fit(net, xs, ys, lambda out, y: F.binary_cross_entropy_with_logits(out, y), args, t0)
    probs = predict_split(net, xv, torch.sigmoid)
    thresholds, validation = [], {}
    for j, name in enumerate(NAMES):
        t, jstat = youden_threshold(probs[:, j], yv[:, j])
        thresholds.append(t)
        validation[name] = {"auroc": round(auroc(probs[:, j], yv[:, j]), 5), "threshold": t, "youden_j": round(jstat, 5)}
        print(f"  {name:14s} AUROC {validation[name]['auroc']:.4f}  threshold {t:.4f}  J {jstat:.4f}")

    t_total = time.perf_counter() - t0
    tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    tensors["op_threshs"] = torch.tensor(thresholds, dtype=torch.float32)
    training = {
        "n_train": args.n_train,
        "n_val": args.n_val,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "optimizer": "AdamW + OneCycleLR(pct_start=0.15)",
        "loss": "binary cross-entropy (multi-label)",
        "threads": args.threads,
        "distribution": DISTRIBUTION,
        "image_entropy": "numpy default_rng([seed, split, index]); split 0 train, 1 validation",
        "operating_point": "max Youden's J on the validation split; positive iff p > threshold",
        "renderer": RENDERER_VERSION,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }  # no wall-clock time: the same seed and versions give identical tensors and metadata
    metadata = {
        "format": "pytest-synthcxr phantom judge v1",
        "seed": str(args.seed),
        "outputs": json.dumps(list(NAMES)),
        "architecture": json.dumps({"name": "PhantomNet", "width": args.width, "parameters": n_params}),
        "training": json.dumps(training, sort_keys=True),
        "validation": json.dumps(validation, sort_keys=True),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=metadata)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1024:.0f} KiB, {n_params} parameters) in {t_total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
