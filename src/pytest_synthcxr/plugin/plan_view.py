"""--synthcxr-plan: what an audit may generate, and how long that takes on this machine.

The rate is --synthcxr-plan-rate when given; otherwise a handful of images are generated and
judged now (after one warm-up image, so loading and first-call costs are left out) and timed.
Nothing is written to the sample cache.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .session import AuditSession

#: images timed for the rate (after one warm-up image)
TIMED_IMAGES = 4


def measure_rate(audit: "AuditSession", images: int = TIMED_IMAGES) -> float:
    """Images per second generated and judged, on the first cell of the audit's first item."""
    from ..sampling.cells import derive_seed

    pool = audit.pool
    cells = [c for check in (audit.selected or audit.checks) for c in check.cells()]
    prompt = cells[0].prompt if cells else "Pleural effusion."
    key = cells[0].key if cells else "plan"
    seeds = [derive_seed(audit.options.seed, f"plan:{key}", i) for i in range(images + 1)]
    pool.judge.predict(pool.generator.generate([prompt], seeds[:1]))  # warm-up: loading, first-call compilation
    batch = max(1, min(images, audit.spec.batch_size))
    t0 = time.perf_counter()
    done = 0
    while done < images:
        n = min(batch, images - done)
        pool.judge.predict(pool.generator.generate([prompt] * n, seeds[1 + done : 1 + done + n]))
        done += n
    return images / max(time.perf_counter() - t0, 1e-9)


def plan_lines(audit: "AuditSession", fuzz: list[Any], config: pytest.Config) -> list[str]:
    from ..sampling.plan import extra_lines, format_plan, plan

    spec = audit.spec
    checks = audit.selected or audit.checks
    rows, total = plan(
        checks, sequential=spec.sampling == "sequential", first_round=spec.first_round,
        alpha=1 - spec.confidence, power=spec.power, margin=spec.margin,
    )
    rate = getattr(config.option, "synthcxr_plan_rate", None)
    measured = rate is None
    if measured:
        rate = measure_rate(audit)
    reference = audit.options.reference
    lines = format_plan(rows, total, power=spec.power, margin=spec.margin) + extra_lines(fuzz, len(reference) if reference is not None else None)
    powered = powered_images(checks, 1 - spec.confidence, spec.power, spec.margin)
    how = f"measured now on {TIMED_IMAGES} images" if measured else "from --synthcxr-plan-rate"
    lines.append(f"rate: {rate:.2f} images/s generated and judged ({how}; the sample cache makes a rerun cheaper)")
    lines.append(f"budget: at most {total} images, about {duration(total / rate)}")
    lines.append(f"power-based size: about {powered} images, about {duration(powered / rate)} (sequential sampling usually stops sooner)")
    return lines


def powered_images(checks: list[Any], alpha: float, power: float, margin: float) -> int:
    """Distinct images if every item drew its power-based size per cell (its budget where it has
    none, and never more than its budget); cells shared between items are counted once."""
    need: dict[Any, int] = {}
    for check in checks:
        size = check.power_samples(alpha, power, margin) if hasattr(check, "power_samples") else None
        per_cell = check.samples if size is None else min(size, check.samples)
        for cell in check.cells():
            need[cell] = max(need.get(cell, 0), per_cell)
    return sum(need.values())


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
