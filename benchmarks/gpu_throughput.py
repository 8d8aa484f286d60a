"""Images/s of the full-size RoentGen stand-in by GPU setting, against a naive diffusers loop and
against the hardware limit (issue 19).

    .venv/bin/python benchmarks/gpu_throughput.py                # a GPU: 512 px, 75 steps, guidance 4
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpu_throughput.py --quick   # a CPU: the narrow stand-in, 64 px, 2 steps
    .venv/bin/python benchmarks/gpu_throughput.py --dtypes bfloat16 --compile off,on --budget-s 500

One prepared run: builds the stand-in (models/generators/standin.py: SD 1.x UNet 860M, SD 1.x VAE,
CLIP ViT-L/14 text encoder; random weights, offline) once, then for every dtype x attention x
compile the audit's own generator (DiffusersGenerator, batch_size = "probe") generates requests
of ``--request`` images until its probe has chosen a size, then ``--images`` more are timed. The
naive loop is what a hand-written audit does: a plain StableDiffusionPipeline, one call per
image, diffusers' defaults. Each row prints as soon as it is measured (and goes to ``--json``), so
a run stopped by ``--budget-s`` or a time limit keeps what it measured.

The hardware limit: one image costs the UNet's FLOPs per pass (torch.utils.flop_counter on the
meta device) x 2 (classifier-free guidance runs the UNet on the prompt and on the empty prompt)
x steps; the VAE decoder and text encoder are left out (a few % of the UNet's work at 75 steps).
It is compared with the device's datasheet peak for the dtype (dense tensor cores; float32 against
TF32, which cuDNN uses for convolutions by default) where the device is in PEAKS or given by
``--peak-tflops``, and with a measured large matmul in the dtype (the rate the device actually
reaches on the easiest kernel; the only reference on a CPU).

On a CPU shared with other work, run with OMP_NUM_THREADS=1: OpenMP threads that wait for a busy
core made the same pipeline call 10 to 30 times slower, and erratic, in our runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_synthcxr.models.generators import standin
from pytest_synthcxr.models.generators.diffusers import (
    DiffusersGenerator,
    GeneratorError,
)

PROMPTS = ["Pleural effusion.", "Hispanic female. Pleural effusion.", "Cardiomegaly.", "No acute cardiopulmonary process."]
#: datasheet dense peaks in TFLOP/s: (float32 as TF32, float16, bfloat16); matched on the device name
PEAKS = {
    "H200": (494.7, 989.4, 989.4),  # H100 SXM's compute with more memory
    "H100": (494.7, 989.4, 989.4),  # SXM; the PCIe card is ~25% lower: pass --peak-tflops
    "A100": (156.0, 312.0, 312.0),
    "L40S": (183.0, 362.0, 362.0),
    "L4": (60.0, 121.0, 121.0),
    "A10": (62.5, 125.0, 125.0),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CPU figures: the narrow stand-in at 64 px, 2 steps")
    p.add_argument("--device", default=None, help="default cuda, or cpu with --quick")
    p.add_argument("--dtypes", default="float32,float16,bfloat16")
    p.add_argument("--attention", default="sdpa,classic")
    p.add_argument("--compile", default=None, help="off,on (default; --quick: off)")
    p.add_argument("--side", type=int, default=None, help="image side (512; --quick 64)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (75; --quick 2)")
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--request", type=int, default=None, help="images per request, as the sample pool asks (64; --quick 8)")
    p.add_argument("--images", type=int, default=None, help="images timed per setting after the probe (64; --quick 8)")
    p.add_argument("--repeats", type=int, default=None, help="timings of --images per setting; the median is reported (1; --quick 3)")
    p.add_argument("--naive-images", type=int, default=None, help="images of the naive loop per dtype (8; --quick 8)")
    p.add_argument("--naive-dtypes", default=None, help="dtypes of the naive loop (default: float32,float16 on a GPU, float32 on a CPU)")
    p.add_argument("--standin", type=Path, default=None, help="a stand-in folder built earlier (else built into a temporary folder)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak for every dtype, overriding PEAKS")
    p.add_argument("--budget-s", type=float, default=None, help="stop starting new rows after this many seconds")
    p.add_argument("--json", type=Path, default=None, help="write every row here as it is measured")
    p.add_argument("--full-unet-step", action="store_true", help="also time one guided step of the full-size UNet (on a CPU: ~30 s)")
    a = p.parse_args(argv)
    quick = a.quick
    a.device = a.device or ("cpu" if quick else "cuda")
    a.compile = a.compile or ("off" if quick else "off,on")
    a.side = a.side or (64 if quick else 512)
    a.steps = a.steps or (2 if quick else 75)
    a.request = a.request or (8 if quick else 64)
    a.images = a.images or (8 if quick else 64)
    a.naive_images = a.naive_images or 8
    a.repeats = a.repeats or (3 if quick else 1)
    a.naive_dtypes = a.naive_dtypes or ("float32" if a.device == "cpu" else "float32,float16")
    return a


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_tflops(device: str, dtype: str, n: int) -> float:
    """The rate of an n x n matmul in the dtype, best of a few: what the device reaches on the easiest kernel."""
    import torch

    t = getattr(torch, dtype)
    a, b = torch.randn(n, n, device=device, dtype=t), torch.randn(n, n, device=device, dtype=t)
    best = float("inf")
    for _ in range(4):
        sync(device)
        began = time.perf_counter()
        (a @ b).sum().item()
        sync(device)
        best = min(best, time.perf_counter() - began)
    return 2 * n**3 / best / 1e12


def datasheet_peak(device: str, dtype: str, override: float | None) -> tuple[float | None, str]:
    if override is not None:
        return override, "given"
    if not device.startswith("cuda"):
        return None, "none"
    import torch

    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAKS.items():
        if key in name:
            return peaks[("float32", "float16", "bfloat16").index(dtype)], name
    return None, name


def timed_generate(gen: DiffusersGenerator, n: int, first_seed: int, device: str) -> tuple[float, np.ndarray]:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    sync(device)
    began = time.perf_counter()
    images = gen.generate(prompts, list(range(first_seed, first_seed + n)))
    sync(device)
    return time.perf_counter() - began, images


def ours(folder: Path, a: argparse.Namespace, dtype: str, attention: str, compiled: bool) -> tuple[dict[str, Any], np.ndarray]:
    """The audit's generator with the probe: requests until the probe has chosen, then the timed images."""
    gen = DiffusersGenerator(
        folder, name="standin", device=a.device, dtype=dtype, steps=a.steps, guidance=a.guidance, height=a.side, width=a.side,
        attention=attention, compile=compiled, batch_size="probe", probe_limit=a.request, lazy=True,
    )
    began = time.perf_counter()
    gen.pipe  # noqa: B018 - load outside the probe
    load_s = time.perf_counter() - began
    probe_s, seed = 0.0, 0
    for _ in range(8):
        if gen.probe.done:
            break
        seconds, _ = timed_generate(gen, a.request, 10_000 + seed, a.device)
        probe_s, seed = probe_s + seconds, seed + a.request
    times = []
    for _ in range(a.repeats):  # the median of a few timings: a shared machine is noisy
        seconds, images = timed_generate(gen, a.images, 0, a.device)
        times.append(seconds)
    seconds = float(np.median(times))
    row = {
        "kind": "ours", "dtype": dtype, "attention": attention, "compile": compiled, "batch": gen.batch_size,
        "probe": gen.probe.summary(), "load_s": round(load_s, 2), "probe_s": round(probe_s, 2),
        "images": a.images, "seconds": round(seconds, 3), "images_per_s": a.images / seconds, "best_images_per_s": a.images / min(times),
        "nan_images": int(np.isnan(images).any(axis=(1, 2)).sum()),
    }
    return row, images


def naive(folder: Path, a: argparse.Namespace, dtype: str) -> tuple[dict[str, Any], np.ndarray]:
    """A hand-written loop: a plain StableDiffusionPipeline, diffusers' defaults, one call per image."""
    import diffusers
    import torch
    from diffusers import StableDiffusionPipeline

    new_api = hasattr(getattr(diffusers.utils, "deprecation_utils", None), "_resolve_dtype")  # torch_dtype became dtype
    pipe = StableDiffusionPipeline.from_pretrained(folder, **{"dtype" if new_api else "torch_dtype": getattr(torch, dtype)}, safety_checker=None, requires_safety_checker=False).to(a.device)
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"num_inference_steps": a.steps, "guidance_scale": a.guidance, "height": a.side, "width": a.side, "output_type": "np"}
    pipe(PROMPTS[0], generator=torch.Generator("cpu").manual_seed(0), **kwargs)  # warm-up
    out = []
    sync(a.device)
    began = time.perf_counter()
    for i in range(a.naive_images):
        out.append(pipe(PROMPTS[i % len(PROMPTS)], generator=torch.Generator("cpu").manual_seed(i), **kwargs).images[0].mean(axis=-1))
    sync(a.device)
    seconds = time.perf_counter() - began
    del pipe
    return {"kind": "naive", "dtype": dtype, "attention": "sdpa", "compile": False, "batch": 1, "images": a.naive_images, "seconds": round(seconds, 3), "images_per_s": a.naive_images / seconds}, np.stack(out)


def full_unet_step_seconds(device: str) -> float:
    """One guided denoising step (batch 2) of the full-size UNet at 512 px, float32, timed once after a warm-up on GPUs."""
    import torch

    unet = standin.build_components(False, device)["unet"].eval()
    x, text = torch.randn(2, 4, 64, 64, device=device), torch.randn(2, 77, 768, device=device)
    with torch.inference_mode():
        if device != "cpu":
            unet(x, torch.tensor([500, 500], device=device), encoder_hidden_states=text)
        sync(device)
        began = time.perf_counter()
        unet(x, torch.tensor([500, 500], device=device), encoder_hidden_states=text)
        sync(device)
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> None:
    import torch

    a = parse_args(argv)
    started = time.perf_counter()
    small = a.quick
    unet_flops = standin.unet_flops(small, a.side)
    per_image = unet_flops * (2 if a.guidance > 1 else 1) * a.steps
    print(f"stand-in: {'narrow (tests)' if small else 'full size'}, {a.side} px, {a.steps} steps, guidance {a.guidance}, device {a.device} "
          f"({torch.cuda.get_device_name(a.device) if a.device.startswith('cuda') else f'{torch.get_num_threads()} CPU threads'}), torch {torch.__version__}")
    print(f"UNet {unet_flops / 1e9:.1f} GFLOPs per pass; {per_image / 1e12:.3f} TFLOPs of UNet per image", flush=True)
    rows: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if a.json:
            a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "unet_flops": unet_flops, "per_image_flops": per_image, "rows": rows}, indent=1))

    if a.full_unet_step:
        seconds = full_unet_step_seconds(a.device)
        emit({"kind": "full-unet-step", "seconds": round(seconds, 2), "images_per_s_at_75_steps": 1 / (seconds * 75), "tflops": 2 * standin.unet_flops(False, 512) / seconds / 1e12})

    with tempfile.TemporaryDirectory() as tmp:
        folder = a.standin or Path(tmp) / "standin"
        if not (folder / "model_index.json").is_file():
            began = time.perf_counter()
            standin.save(folder, small=small, device=a.device if a.device.startswith("cuda") else "cpu")
            print(f"built the stand-in in {time.perf_counter() - began:.0f} s: {folder}", flush=True)
        gemm = {d: matmul_tflops(a.device, d, 1024 if a.device == "cpu" else 8192) for d in a.dtypes.split(",")}
        emit({"kind": "matmul", **{d: round(v, 3) for d, v in gemm.items()}})
        reference: np.ndarray | None = None

        def limits(row: dict[str, Any]) -> None:
            """The row's UNet work rate against the datasheet peak and the measured matmul."""
            peak, where = datasheet_peak(a.device, row["dtype"], a.peak_tflops)
            row["unet_tflops"] = row["images_per_s"] * per_image / 1e12
            row["of_datasheet_peak"] = row["unet_tflops"] / peak if peak else None
            row["of_matmul"] = row["unet_tflops"] / gemm[row["dtype"]] if row["dtype"] in gemm else None
            row["peak_from"] = where

        plan = [(d, att, c == "on") for d in a.dtypes.split(",") for att in a.attention.split(",") for c in a.compile.split(",")]
        best: dict[str, float] = {}
        for dtype, attention, compiled in plan:
            if a.budget_s and time.perf_counter() - started > a.budget_s:
                print(f"budget spent: skipped {dtype} {attention} compile={compiled}", flush=True)
                continue
            try:
                row, images = ours(folder, a, dtype, attention, compiled)
            except (GeneratorError, RuntimeError) as exc:
                emit({"kind": "ours", "dtype": dtype, "attention": attention, "compile": compiled, "error": str(exc).splitlines()[0][:300]})
                continue
            finally:
                if a.device.startswith("cuda"):
                    torch.cuda.empty_cache()
            limits(row)
            if reference is None and dtype == "float32" and attention == "sdpa" and not compiled:
                reference = images[:8]
            if reference is not None:  # do the settings change pixels? against float32, sdpa, no compile
                diff = np.abs(np.nan_to_num(images[:8]) - reference) * 255
                row["vs_float32_max_levels"] = float(diff.max())
                row["vs_float32_pixels_changed"] = float((diff > 0).mean())
            best[dtype] = max(best.get(dtype, 0.0), row["images_per_s"])
            emit(row)
        for dtype in a.naive_dtypes.split(","):
            if a.budget_s and time.perf_counter() - started > a.budget_s:
                print(f"budget spent: skipped the naive loop in {dtype}", flush=True)
                continue
            row, _ = naive(folder, a, dtype)
            row["ours_best_over_naive"] = best.get(dtype, float("nan")) / row["images_per_s"]
            limits(row)
            emit(row)
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| run | dtype | attention | compile | batch | images/s | UNet TFLOP/s | of datasheet peak | of matmul | max diff vs float32 (8-bit levels) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["kind"] not in ("ours", "naive") or "error" in r:
            continue
        peak = f"{r['of_datasheet_peak']:.1%}" if r.get("of_datasheet_peak") else "-"
        matmul = f"{r['of_matmul']:.1%}" if r.get("of_matmul") is not None else "-"
        tflops = f"{r['unet_tflops']:.3g}" if r.get("unet_tflops") is not None else "-"
        diff = f"{r['vs_float32_max_levels']:.0f} ({r['vs_float32_pixels_changed']:.1%} of pixels)" if "vs_float32_max_levels" in r else "-"
        print(f"| {r['kind']} | {r['dtype']} | {r['attention']} | {'on' if r['compile'] else 'off'} | {r['batch']} | {r['images_per_s']:.3g} | {tflops} | {peak} | {matmul} | {diff} |")
    for r in rows:
        if r["kind"] == "naive":
            print(f"naive loop, {r['dtype']}: ours (best setting) is {r['ours_best_over_naive']:.2f}x its images/s")
        if "error" in r:
            print(f"{r['dtype']} {r['attention']} compile={r['compile']}: {r['error']}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
