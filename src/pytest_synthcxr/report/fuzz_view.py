"""The fuzz section of the HTML report: each fuzz item's shrunk (or closest) prompt pair with the
first paired images, regenerated from prompt and seed (sample i of every fuzz prompt uses the
same seed, so image A[i] and B[i] differ only by the prompt)."""

from __future__ import annotations

from typing import Any

#: paired images shown per fuzz item (two generator calls of this many images each)
PAIRED_THUMBNAILS = 3


def fuzz_pairs(items: list[dict[str, Any]], pool: Any, base_seed: int, image_uri: Any, shown: int = PAIRED_THUMBNAILS) -> dict[str, dict[str, Any]]:
    """Per fuzz item id: its example's prompts and `shown` pairs of embedded images (or an error)."""
    from ..fuzz.sampler import FUZZ_KEY
    from ..sampling.cells import derive_seed

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        example = (item.get("fuzz") or {}).get("example")
        if not example:
            continue
        n = min(shown, int(example.get("n") or 0))
        seeds = [derive_seed(base_seed, FUZZ_KEY, i) for i in range(n)]
        entry: dict[str, Any] = {"example": example, "pairs": [], "error": None}
        if pool is not None and n:
            try:
                a = pool.generator.generate([example["base"]] * n, seeds)
                b = pool.generator.generate([example["changed"]] * n, seeds)
                entry["pairs"] = [{"i": i, "seed": s, "a": image_uri(x), "b": image_uri(y)} for i, (s, x, y) in enumerate(zip(seeds, a, b))]
            except Exception as exc:  # noqa: BLE001 - the report must still be written
                entry["error"] = f"{type(exc).__name__}: {exc}"
        out[item["id"]] = entry
    return out
