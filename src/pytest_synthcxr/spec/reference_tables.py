"""Spec sections that compare synthetic images with a reference set (see spec.AuditSpec):

    [[tool.synthcxr.versus_real]]   synthetic-minus-real bound on a judge metric
    [[tool.synthcxr.fidelity]]      Frechet distance on judge features (overall, per finding, per subgroup)
    [[tool.synthcxr.diversity]]     MS-SSIM between images of the same prompt
    [[tool.synthcxr.memorization]]  share of synthetic images nearly identical to a reference image
    [[tool.synthcxr.demographic]]   share of images showing the sex / race their prompt named
                                    (needs an attribute judge, not a reference set)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .vocabulary import FINDINGS, PROBES

Finding = Literal[FINDINGS]  # type: ignore[valid-type]
Probe = Literal[PROBES + FINDINGS]  # type: ignore[valid-type]
Samples = Field(default=None, ge=2, le=1_000_000)

#: spec keys of these sections (each a table or an array of tables)
SECTIONS = ("versus_real", "fidelity", "diversity", "memorization", "demographic")
#: sections that need a reference set
NEEDS_REFERENCE = ("versus_real", "fidelity", "memorization")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class VersusRealSpec(_Section):
    """Bound on (synthetic - real) of a judge metric, each measured on its own images:
    uncertainty (mean entropy, bits), hallucination (probe rate), tpr-drop (real TPR - synthetic
    TPR), tpr-gap (synthetic TPR gap across sex x race - real TPR gap)."""

    metric: Literal["uncertainty", "hallucination", "tpr-drop", "tpr-gap"]
    findings: list[Finding] | None = None
    probes: list[Probe] = Field(default_factory=lambda: list(PROBES), min_length=1)
    max_difference: float = Field(ge=-1.0, le=1.0)
    samples: int | None = Samples


class FidelitySpec(_Section):
    """Frechet distance between judge features of synthetic and reference images."""

    by: list[Literal["overall", "finding", "subgroup"]] = Field(default_factory=lambda: ["overall"], min_length=1)
    #: fd: the plug-in distance (what FID tables report); excess: the distance minus its
    #: same-distribution level at these sample sizes (permutations), 0 = indistinguishable
    statistic: Literal["fd", "excess"] = "fd"
    max_fd: float = Field(gt=0.0)
    findings: list[Finding] | None = None
    bootstrap: int = Field(default=200, ge=20, le=100_000)
    samples: int | None = Samples

    @model_validator(mode="before")
    @classmethod
    def _one_by(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("by"), str):
            data = {**data, "by": [data["by"]]}
        return data


class DiversitySpec(_Section):
    """Mean MS-SSIM between pairs of images generated from the same prompt (1: identical)."""

    max_msssim: float = Field(ge=0.0, le=1.0)
    findings: list[Finding] | None = None
    samples: int | None = Samples


class MemorizationSpec(_Section):
    """Share of synthetic images whose nearest reference image (cosine similarity of judge
    features) is at least `similarity`."""

    similarity: float = Field(default=0.995, gt=0.0, le=1.0)
    max_rate: float = Field(ge=0.0, le=1.0)
    samples: int | None = Samples


class DemographicSpec(_Section):
    """Share of images (prompts naming sex and race, and age when subgroups.age is set) whose
    predicted attribute matches the prompt; a predicted age matches within `tolerance` years."""

    attribute: Literal["sex", "race", "age"]
    min_agreement: float = Field(ge=0.0, le=1.0)
    #: age only: largest |predicted - asked| age, in years, that still agrees (RoentGen-v2 rejects beyond 16)
    tolerance: float | None = Field(default=None, gt=0.0, le=100.0)
    samples: int | None = Samples

    @model_validator(mode="after")
    def _tolerance_for_age(self) -> "DemographicSpec":
        if self.tolerance is not None and self.attribute != "age":
            raise ValueError(f"'tolerance' applies to attribute 'age' only, not {self.attribute!r}")
        return self
