"""Public path of the hypothesis prompt strategies (``from pytest_synthcxr import strategies as cxr``).

They live in :mod:`pytest_synthcxr.fuzz.strategies`; this name is that same module object, so
every name (public helpers such as ``age_band`` included) is reachable by the documented path.
"""

import sys

from .fuzz import strategies as _strategies

sys.modules[__name__] = _strategies
