"""Model aliases: names a user passes to --synthcxr-model, resolved to generators and judges.

Resolution is cheap (no heavy imports) so a bad alias is a usage error before any test runs.
"""

from __future__ import annotations


ERR_UNKNOWN_MODEL = "synthcxr: unknown model {name!r} (from {source}); known models: {known}"

#: alias -> (generator kind, preset, default judge)
BUILTIN_MODELS: dict[str, tuple[str, str, str]] = {
    "phantom": ("phantom", "phantom", "phantom"),
    "phantom-biased": ("phantom", "phantom-biased", "phantom"),
    "phantom-fair": ("phantom", "phantom-fair", "phantom"),
    "phantom-regressed": ("phantom", "phantom-regressed", "phantom"),
}


class ModelError(Exception):
    """An unusable model name; str() is the one line shown to the user."""
