"""Stage 2, statistics: intervals and verdicts, confidence sequences, judge-error correction,
sample sizes, the sequential rule and paired statistics. Pure functions of counts and scores.

May import: spec only (no I/O, no pytest, no torch)."""

# the functional core reads as one namespace (``from pytest_synthcxr import stats; stats.wilson``)
from .intervals import *  # noqa: E402,F401,F403
from .intervals import Direction, Estimate, IntervalKind, Outcome  # noqa: E402,F401
from .judge_error import *  # noqa: E402,F401,F403
from .power import *  # noqa: E402,F401,F403
