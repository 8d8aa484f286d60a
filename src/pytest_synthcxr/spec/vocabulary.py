"""The closed vocabulary of the audit: findings, probes, laterality and demographic values.

Finding names follow torchxrayvision's output names so a real judge maps onto them unchanged.
"""

from __future__ import annotations

#: Findings a generator can be asked to draw and a disease judge scores.
FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Pneumothorax",
)

#: Out-of-training probes: never requested by a prompt; detecting one is a hallucination.
PROBES: tuple[str, ...] = ("COVID-19",)

#: Findings drawn on one side of the chest (patient's left/right).
LATERAL_FINDINGS: frozenset[str] = frozenset({"Atelectasis", "Consolidation", "Effusion", "Pneumothorax"})
LATERALITIES: tuple[str, ...] = ("left", "right", "bilateral")

#: Demographic attributes and their allowed values.
SEXES: tuple[str, ...] = ("female", "male")
RACES: tuple[str, ...] = ("White", "Black", "Asian", "Hispanic")
ATTRIBUTES: dict[str, tuple[str, ...]] = {"sex": SEXES, "race": RACES}
