"""Choosing a generator's batch size by trying it: a short probe on the first real requests.

The probe runs batches of 1, 2, 4, ... images (each size ``repeats`` times; the best rate counts,
so a first call's warm-up, a cuDNN autotune or a torch.compile recompile is not held against a
size) and stops at the first size that is not ``gain`` times faster than the best so far, at
out-of-memory, at ``limit``, or when a whole request is smaller than the next size. It keeps the
size with the most images/s. Every probe batch is a real batch of the request: the images are
kept, nothing is generated twice. Images do not depend on the batch size (one seed per image),
so the probe's choice, which depends on timing, never changes a result.

Pure bookkeeping: no torch, no clock (the caller times each batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BatchProbe:
    """State of one probe; ``chosen`` is None while it runs."""

    start: int = 1
    limit: int = 256
    repeats: int = 2
    #: a larger size must beat the best rate so far by this factor to keep the probe going
    gain: float = 1.05
    rates: dict[int, float] = field(default_factory=dict)  # size -> best images/s measured
    chosen: int | None = None
    out_of_memory_at: int | None = None
    _size: int = 0
    _runs: int = 0

    def __post_init__(self) -> None:
        self.start = max(1, min(self.start, self.limit))
        self._size = self.start

    @property
    def done(self) -> bool:
        return self.chosen is not None

    def next_batch(self, remaining: int, fresh_request: bool) -> tuple[int, bool]:
        """(size of the next batch, whether to time it) for a request with ``remaining`` images
        left; ``fresh_request``: nothing of this request has been generated yet."""
        if self.done:
            raise RuntimeError("the probe has finished: use its chosen size")
        if self._size <= remaining:
            return self._size, True
        if fresh_request:  # requests never get this large: the sizes measured are all there is
            self._finish()
            return min(self.chosen or 1, remaining), False
        return remaining, False  # the tail of a request: generated, not timed

    def record(self, size: int, seconds: float) -> None:
        """One timed batch of ``size`` images took ``seconds``."""
        rate = size / max(seconds, 1e-9)
        self.rates[size] = max(rate, self.rates.get(size, 0.0))
        self._runs += 1
        if self._runs < self.repeats:
            return
        smaller = [r for s, r in self.rates.items() if s < size]
        improving = not smaller or self.rates[size] >= self.gain * max(smaller)
        if not improving or size * 2 > self.limit:
            self._finish()
        else:
            self._size, self._runs = size * 2, 0

    def out_of_memory(self, size: int) -> int:
        """``size`` did not fit: finish with the best smaller size (today's halving when none was
        measured); returns the size to use from now on."""
        self.out_of_memory_at = size
        self.rates = {s: r for s, r in self.rates.items() if s < size}
        if not self.rates:
            self.rates[max(1, size // 2)] = 0.0  # not measured: halving, as without a probe
        self._finish()
        return self.chosen or 1

    def _finish(self) -> None:
        if not self.rates:
            self.chosen = self.start
            return
        best = max(self.rates.values())
        self.chosen = max(s for s, r in self.rates.items() if r == best)

    def summary(self) -> str:
        """One line: what was tried, what was kept."""
        tried = ", ".join(f"{s}: {r:.3g}/s" if r else f"{s}: -" for s, r in sorted(self.rates.items()))
        oom = f"; out of memory at {self.out_of_memory_at}" if self.out_of_memory_at else ""
        state = f"batch size {self.chosen}" if self.done else "probing"
        return f"{state} (images/s by batch size: {tried or 'none yet'}{oom})"
