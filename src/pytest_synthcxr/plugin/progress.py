"""Progress of generation and judging, through pytest's terminal reporter.

On a terminal: one live line, rewritten in place at most every ``TTY_INTERVAL`` seconds. Without
one (CI logs): a plain line every ``interval`` seconds (``--synthcxr-progress-interval``, default
30). Each line gives the images done and to do in the current round, the rate, and an ETA for
the round.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, ContextManager

TTY_INTERVAL = 0.5
DEFAULT_INTERVAL = 30.0


def describe(done: int, total: int, rate: float, what: str = "") -> str:
    left = max(total - done, 0)
    eta = f", ETA {_duration(left / rate)}" if rate > 0 and left else ""
    where = f" ({what})" if what else ""
    return f"synthcxr: {done}/{total} images generated and judged{where}, {rate:.2f} images/s{eta}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Called by the sample pool with (done, total) after each batch of a round."""

    def __init__(
        self,
        reporter: Callable[[], Any],
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.perf_counter,
        uncaptured: Callable[[], ContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self._reporter = reporter  # returns pytest's terminal reporter (or None) when called
        self._uncaptured = uncaptured  # suspends pytest's output capture while a line is written
        self.interval = interval
        self.clock = clock
        self.what = ""  # the item being sampled, shown in the line
        self._round_start = 0.0
        self._first_done = 0
        self._last_done = -1
        self._shown = 0.0
        self._live = False  # a live line is on screen and needs a newline before other output

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if done <= self._last_done or self._last_done < 0:  # a new round: its first batch just finished
            self._round_start, self._first_done, self._shown = now, done, now
        self._last_done = done
        reporter = self._reporter()
        if reporter is None:
            return
        elapsed = max(now - self._round_start, 1e-9)
        rate = (done - self._first_done) / elapsed if done > self._first_done else 0.0
        with self._uncaptured():
            self._show(reporter, now, done, total, rate)

    def _show(self, reporter: Any, now: float, done: int, total: int, rate: float) -> None:
        tty = bool(getattr(reporter, "isatty", False))
        if done >= total:
            if self._live:
                reporter.rewrite(describe(done, total, rate, self.what), erase=True)
                reporter.write("\n")
                self._live = False
            return
        if now - self._shown < (min(TTY_INTERVAL, self.interval) if tty else self.interval):
            return
        self._shown = now
        text = describe(done, total, rate, self.what)
        if tty:
            if not self._live:
                reporter.ensure_newline()
            reporter.rewrite(text, erase=True)
            self._live = True
        else:
            reporter.ensure_newline()
            reporter.write_line(text)
