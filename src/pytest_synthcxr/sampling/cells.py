"""Cells: one generation condition each, and the seed rule that makes every sample reproducible."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .prompts import build_prompt


@dataclass(frozen=True, order=True)
class Cell:
    """One generation condition: the finding asked for (None: a normal study), the subgroup, and
    whether the subgroup's sex/race are written into the prompt ("named") or not ("plain").

    A `paired` cell draws its seeds from the finding alone (see `seed_key`): every paired cell of
    one finding, whatever its subgroup or prompt mode, uses the same seed for sample i, so the
    images of two subgroups differ only through the demographic words of the prompt and their
    outcomes can be compared seed by seed (bias statistics, issue 17). Paired cells are separate
    cells from the unpaired ones other checks use: pooling same-seed images of several subgroups
    into one rate (as a demographic-fidelity share does) would count correlated images as
    independent ones."""

    finding: str | None
    subgroup: tuple[tuple[str, str], ...] = ()
    named: bool = False
    paired: bool = False

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.subgroup)

    @property
    def prompt(self) -> str:
        return build_prompt(self.finding, self.attributes if self.named else None)

    @property
    def key(self) -> str:
        group = ",".join(f"{k}={v}" for k, v in self.subgroup) or "all"
        return f"{self.finding or 'normal'}|{group}|{'named' if self.named else 'plain'}{'|paired' if self.paired else ''}"

    @property
    def seed_key(self) -> str:
        """What sample seeds derive from: the cell's key, or for a paired cell its finding only."""
        return f"{self.finding or 'normal'}|paired" if self.paired else self.key


def derive_seed(base_seed: int, cell_key: str, index: int) -> int:
    """Seed of sample `index` of a cell: independent of test order, batch size, worker or check."""
    digest = hashlib.sha256(f"{base_seed}\x1f{cell_key}\x1f{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: valid for numpy and torch generators


def subgroup_label(subgroup: tuple[tuple[str, str], ...]) -> str:
    """'Hispanic female' for (('sex','female'),('race','Hispanic')), '60-year-old Hispanic female'
    with ('age','60'); 'all' for the whole population."""
    values = dict(subgroup)
    words = [f"{values['age']}-year-old"] if values.get("age") else []
    words += [values[k] for k in ("race", "sex") if k in values] + [v for k, v in subgroup if k not in ("race", "sex", "age")]
    return " ".join(words) or "all"
