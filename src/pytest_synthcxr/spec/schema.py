"""The audit spec: TOML schema (pydantic), where it is found, and one-line errors for bad input.

A spec lives in ``[tool.synthcxr]`` of a pyproject.toml, or at the top level (or under
``[tool.synthcxr]``) of its own TOML file. Without one, the packaged default spec is used.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .model_tables import JudgeSpec, ModelSpec
from .locate import find_spec_file  # noqa: F401 - re-exported: where a spec is found
from .reference_tables import SECTIONS as REFERENCE_SECTIONS
from .reference_tables import DemographicSpec, DiversitySpec, FidelitySpec, MemorizationSpec, VersusRealSpec
from .vocabulary import FINDINGS, LATERAL_FINDINGS, PROBES, RACES, SEXES

Finding = Literal[FINDINGS]  # type: ignore[valid-type]
Probe = Literal[PROBES + FINDINGS]  # type: ignore[valid-type]
Sex = Literal[SEXES]  # type: ignore[valid-type]
Race = Literal[RACES]  # type: ignore[valid-type]
Rate = Field(default=None, ge=0.0, le=1.0)
Age = Annotated[int, Field(ge=1, le=110)]

ERR_MISSING = "synthcxr: spec file not found: {path}"
ERR_TOML = "synthcxr: {path}: invalid TOML: {error}"
ERR_NO_TABLE = "synthcxr: {path}: no [tool.synthcxr] table"
ERR_KEY = "synthcxr: {path}: {key}: {message}"


class SpecError(Exception):
    """A spec that cannot be used; str() is the one line shown to the user."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Subgroups(_Section):
    sex: list[Sex] = Field(default_factory=lambda: list(SEXES), min_length=1)
    race: list[Race] = Field(default_factory=lambda: list(RACES), min_length=1)
    #: ages in years written into the demographic-fidelity prompts, RoentGen-v2 style ("60 year old
    #: White female."): each becomes a third attribute of those cells. Empty: prompts name no age
    age: list[Age] = Field(default_factory=list)
    #: subgroup that deviations are measured from
    reference: dict[Literal["sex", "race"], str] = Field(default_factory=lambda: {"sex": "female", "race": "White"})

    @model_validator(mode="after")
    def _reference_in_grid(self) -> "Subgroups":
        if len(set(self.age)) != len(self.age):
            raise ValueError(f"age lists an age twice: {self.age}")
        for attribute in ("sex", "race"):  # a value listed twice would count the same images twice
            values = getattr(self, attribute)
            if len(set(values)) != len(values):
                twice = sorted({v for v in values if values.count(v) > 1})
                raise ValueError(f"{attribute} lists {', '.join(map(repr, twice))} twice: {values}")
        for attribute, value in self.reference.items():
            allowed = getattr(self, attribute)
            if value not in allowed:
                raise ValueError(f"reference {attribute}={value!r} is not in subgroups.{attribute} {allowed}")
        return self


class BiasSpec(_Section):
    metric: list[Literal["tpr", "sr"]] = Field(default_factory=lambda: ["tpr"], min_length=1)
    statistic: Literal["gap", "ratio", "deviation", "prompt-effect"] = "gap"
    findings: list[Finding] | None = None
    by: list[Literal["sex", "race"]] = Field(default_factory=lambda: ["sex", "race"], min_length=1)
    #: "named": sex and race written into the prompt, one paired cell per subgroup; "plain": one
    #: prompt for everyone, images grouped by the subgroup an attribute judge perceives (issue 17)
    prompt: list[Literal["plain", "named"]] = Field(default_factory=lambda: ["named"], min_length=1)
    #: deviation only: "relative" bounds max |r_g / r_ref - 1| instead of max |r_g - r_ref|
    scale: Literal["absolute", "relative"] = "absolute"
    #: with --synthcxr-baseline-model: also a compare[...] item per item, "candidate minus
    #: released <= this" (gap, deviation, prompt effect: larger is worse; ratio: max_decline)
    max_regression: float | None = Rate
    max_decline: float | None = Rate
    max: float | None = Rate
    min: float | None = Rate
    samples: int | None = Field(default=None, ge=2, le=1_000_000)
    #: the bound is the --synthcxr-baseline run's estimate of the same item + max_increase
    #: (ratio: - max_decrease) instead of an absolute max / min
    relative_to_baseline: bool = False
    max_increase: float | None = Rate
    max_decrease: float | None = Rate
    #: "reader": named-prompt gaps and absolute deviations from per-subgroup PPI rates ([reader] labels)
    verdict: Literal["judge", "reader"] = "judge"

    @model_validator(mode="before")
    @classmethod
    def _one_metric(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("metric", "prompt", "by"):
                if isinstance(data.get(key), str):
                    data[key] = [data[key]]
        return data

    @model_validator(mode="after")
    def _bound(self) -> "BiasSpec":
        if self.verdict == "reader" and (self.statistic not in ("gap", "deviation") or self.scale != "absolute" or self.prompt != ["named"]):
            raise ValueError('verdict = "reader" applies to named-prompt gaps and absolute deviations (prompt = ["named"], statistic gap or deviation)')
        if self.scale == "relative" and self.statistic != "deviation":
            raise ValueError(f"scale = 'relative' applies to statistic 'deviation' only, not {self.statistic!r}")
        if self.statistic == "ratio" and self.max_regression is not None:
            raise ValueError("max_regression is for measures where larger is worse; a ratio is worse when smaller: use max_decline")
        if self.statistic != "ratio" and self.max_decline is not None:
            raise ValueError(f"max_decline is for measures where smaller is worse; a {self.statistic} is worse when larger: use max_regression")
        wanted = "min" if self.statistic == "ratio" else "max"
        other = "max" if wanted == "min" else "min"
        margin, other_margin = ("max_decrease", "max_increase") if wanted == "min" else ("max_increase", "max_decrease")
        if self.relative_to_baseline:
            if getattr(self, margin) is None or getattr(self, other_margin) is not None or self.max is not None or self.min is not None:
                raise ValueError(f"relative_to_baseline with statistic {self.statistic!r} takes '{margin}' (and neither 'max', 'min' nor '{other_margin}')")
            return self
        if self.max_increase is not None or self.max_decrease is not None:
            raise ValueError("max_increase / max_decrease need relative_to_baseline = true")
        if getattr(self, wanted) is None or getattr(self, other) is not None:
            raise ValueError(f"statistic {self.statistic!r} takes a bound '{wanted}' (and not '{other}')")
        return self


class ValiditySpec(_Section):
    findings: list[Finding] | None = None
    min_sensitivity: float | None = Rate
    max_fpr: float | None = Rate
    min_auroc: float | None = Rate
    samples: int | None = Field(default=None, ge=2, le=1_000_000)
    #: bounds relative to the --synthcxr-baseline run's estimate of the same item ("sensitivity no
    #: lower than the last checkpoint's - 0.05") instead of the absolute ones
    relative_to_baseline: bool = False
    max_sensitivity_decrease: float | None = Rate
    max_fpr_increase: float | None = Rate
    max_auroc_decrease: float | None = Rate
    #: with --synthcxr-baseline-model: compare[...] items, candidate vs released on the same seeds:
    #: sensitivity and AUROC may fall by at most max_decline, the false-positive rate rise by at
    #: most max_regression
    max_decline: float | None = Rate
    max_regression: float | None = Rate
    #: "reader": sensitivity and false-positive rate become prediction-powered (PPI) rates from the
    #: judge's calls on every image and the [reader] labels on the read ones (docs/reader.md)
    verdict: Literal["judge", "reader"] = "judge"

    @model_validator(mode="after")
    def _some_bound(self) -> "ValiditySpec":
        absolute = {k: getattr(self, k) for k in ("min_sensitivity", "max_fpr", "min_auroc")}
        relative = {k: getattr(self, k) for k in ("max_sensitivity_decrease", "max_fpr_increase", "max_auroc_decrease")}
        given, other = (relative, absolute) if self.relative_to_baseline else (absolute, relative)
        if any(v is not None for v in other.values()):
            if self.relative_to_baseline:
                raise ValueError(f"relative_to_baseline takes {', '.join(relative)} (not {', '.join(absolute)})")
            raise ValueError(f"{', '.join(relative)} need relative_to_baseline = true")
        if all(v is None for v in given.values()):
            raise ValueError(f"give at least one of {', '.join(given)}")
        return self


class _RelativeMax(_Section):
    """A 'max' bound given either absolutely or as the baseline run's estimate + max_increase."""

    relative_to_baseline: bool = False
    max_increase: float | None = Rate
    #: with --synthcxr-baseline-model: a compare[...] item, candidate minus released <= this
    max_regression: float | None = Rate
    max_decline: float | None = Rate

    def _bound_key(self) -> str:
        raise NotImplementedError

    @model_validator(mode="after")
    def _absolute_or_relative(self) -> "_RelativeMax":
        key = self._bound_key()
        if self.max_decline is not None:
            raise ValueError(f"max_decline is for measures where smaller is worse; {key} is worse when larger: use max_regression")
        if self.relative_to_baseline:
            if self.max_increase is None or getattr(self, key) is not None:
                raise ValueError(f"relative_to_baseline takes 'max_increase' (and not '{key}')")
        elif self.max_increase is not None:
            raise ValueError("max_increase needs relative_to_baseline = true")
        elif getattr(self, key) is None:
            raise ValueError(f"'{key}' is required (or relative_to_baseline = true with max_increase)")
        return self


class UncertaintySpec(_RelativeMax):
    findings: list[Finding] | None = None
    max_entropy: float | None = Field(default=None, ge=0.0, le=1.0)
    samples: int | None = Field(default=None, ge=2, le=1_000_000)

    def _bound_key(self) -> str:
        return "max_entropy"


class HallucinationSpec(_RelativeMax):
    probes: list[Probe] = Field(default_factory=lambda: list(PROBES), min_length=1)
    max_rate: float | None = Rate
    samples: int | None = Field(default=None, ge=2, le=1_000_000)
    #: "reader": the rate is the prediction-powered (PPI) one, corrected by the [reader] labels
    verdict: Literal["judge", "reader"] = "judge"

    def _bound_key(self) -> str:
        return "max_rate"


class JudgeErrorSpec(_Section):
    """The judge's accuracy for one output, measured on a validation set with known truth: either
    its confusion counts (tp, fn, tn, fp), or sensitivity and specificity with the number of truly
    positive and truly negative images behind them."""

    tp: int | None = Field(default=None, ge=0)
    fn: int | None = Field(default=None, ge=0)
    tn: int | None = Field(default=None, ge=0)
    fp: int | None = Field(default=None, ge=0)
    sensitivity: float | None = Rate
    specificity: float | None = Rate
    positives: int | None = Field(default=None, ge=1)
    negatives: int | None = Field(default=None, ge=1)
    #: measure them on the run's labelled reference set instead (the judge audit's confusion counts)
    reference: bool = False
    #: which rate decides the verdict: the judge-flagged one (raw) or the Rogan-Gladen corrected one
    verdict: Literal["raw", "corrected"] = "raw"

    @model_validator(mode="after")
    def _counts_or_rates(self) -> "JudgeErrorSpec":
        counts = (self.tp, self.fn, self.tn, self.fp)
        rates = (self.sensitivity, self.positives, self.specificity, self.negatives)
        if self.reference:
            if any(v is not None for v in counts + rates):
                raise ValueError("reference = true measures the judge on the reference set: give no counts or rates with it")
            return self
        if all(c is not None for c in counts) and all(r is None for r in rates):
            if self.tp + self.fn == 0 or self.tn + self.fp == 0:  # type: ignore[operator]
                raise ValueError("tp + fn and tn + fp must each be at least 1")
            return self
        if all(r is not None for r in rates) and all(c is None for c in counts):
            return self
        raise ValueError("give either tp, fn, tn, fp or sensitivity, positives, specificity, negatives (or reference = true)")

    def counts(self) -> tuple[int, int, int, int]:
        """(tp, fn, tn, fp), rounding rates times counts where rates were given."""
        if self.tp is not None:
            return self.tp, self.fn, self.tn, self.fp  # type: ignore[return-value]
        tp = round(self.sensitivity * self.positives)  # type: ignore[operator]
        tn = round(self.specificity * self.negatives)  # type: ignore[operator]
        return tp, self.positives - tp, tn, self.negatives - tn  # type: ignore[operator]


class ReaderSpec(_Section):
    """A reader study's labels (python -m pytest_synthcxr.reader): the SQLite database or its CSV
    export. Items with verdict = "reader" decide on rates corrected by these labels (PPI)."""

    labels: str
    #: PPI's weight on the judge: "classic" (1, Angelopoulos et al. 2023) or "tuned" (PPI++)
    lam: Literal["classic", "tuned"] = "classic"


FuzzProperty = Literal["demographic-invariance", "negation", "paraphrase-invariance", "laterality"]


class FuzzSpec(_Section):
    """A property of counterfactual prompt pairs searched with hypothesis (one item per finding)."""

    property: FuzzProperty
    findings: list[Finding] | None = None
    #: largest allowed change of the finding's rate between the two prompts of a pair
    delta: float = Field(default=0.1, gt=0.0, lt=1.0)
    max_examples: int = Field(default=20, ge=1, le=10_000)
    #: paired seeds per example (both prompts of a pair use the same seeds)
    samples: int = Field(default=32, ge=2, le=100_000)
    #: demographic-invariance: which attribute a pair swaps
    attributes: list[Literal["sex", "race", "age"]] = Field(default_factory=lambda: ["sex", "race"], min_length=1)
    #: other findings a prompt may negate ("No pneumothorax.")
    negations: int = Field(default=1, ge=0, le=5)
    layout: bool = True
    modifiers: bool = True

    @model_validator(mode="after")
    def _fits_property(self) -> "FuzzSpec":
        if "attributes" in self.model_fields_set and self.property != "demographic-invariance":
            raise ValueError(f"'attributes' applies to property 'demographic-invariance' only, not {self.property!r}")
        if self.property == "laterality" and self.findings:
            one_sided = [f for f in self.findings if f not in LATERAL_FINDINGS]
            if one_sided:
                raise ValueError(f"laterality needs findings drawn on one side ({', '.join(sorted(LATERAL_FINDINGS))}), got {one_sided}")
        return self


class AuditSpec(_Section):
    model: str | None = None
    #: judge name(s): "phantom", "xrv", "xrv:<weights>" or a [judges] table; several form an ensemble
    judge: str | list[str] | None = None
    seed: int = Field(default=0, ge=0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    samples_per_cell: int = Field(default=100, ge=2, le=1_000_000)
    batch_size: int = Field(default=64, ge=1, le=4096)
    findings: list[Finding] = Field(default_factory=lambda: list(FINDINGS), min_length=1)
    inconclusive: Literal["fail", "xfail", "skip", "warn"] = "fail"
    #: sequential: rounds of first_round, then 1.5x (rates) or 2x (AUROC, entropy) per look up to the budget, stopping when decided, with
    #: anytime-valid intervals; fixed: every check spends its whole budget, fixed-sample intervals
    sampling: Literal["sequential", "fixed"] = "sequential"
    first_round: int = Field(default=16, ge=2, le=1_000_000)
    #: fail-side multiple-testing control across items
    correction: Literal["holm", "bh", "none"] = "holm"
    #: a cell or subgroup with fewer valid images (or fewer judge-positive images, for a rate
    #: conditioned on them) than this never passes: its item stays inconclusive at best
    min_denominator: int = Field(default=20, ge=1, le=1_000_000)
    #: the plan's power-based sample size: power to decide a true value `margin` beyond the threshold
    power: float = Field(default=0.9, gt=0.5, lt=1.0)
    margin: float = Field(default=0.05, gt=0.0, lt=1.0)
    #: the judge's accuracy per output (finding or probe): Rogan-Gladen corrected rates beside the raw ones
    judge_error: dict[Probe, JudgeErrorSpec] = Field(default_factory=dict)
    thumbnails: int = Field(default=2, ge=0, le=16)
    #: image files in the sample cache: auto = when the generator is costlier to run than a PNG is
    #: to read (diffusers: yes; phantom, folder: no); scores are always cached
    cache_images: Literal["auto", "always", "never"] = "auto"
    subgroups: Subgroups = Field(default_factory=Subgroups)
    bias: list[BiasSpec] = Field(default_factory=list)
    validity: list[ValiditySpec] = Field(default_factory=list)
    uncertainty: list[UncertaintySpec] = Field(default_factory=list)
    hallucination: list[HallucinationSpec] = Field(default_factory=list)
    fuzz: list[FuzzSpec] = Field(default_factory=list)
    #: reference images (real, or phantom): a manifest CSV, a MIMIC-CXR-JPG or CheXpert folder or
    #: CSV, or "phantom[:N]"; relative paths are relative to the spec file
    reference: str | None = None
    #: most reference images used (a seeded random subset of larger sets)
    reference_samples: int = Field(default=500, ge=8, le=1_000_000)
    versus_real: list[VersusRealSpec] = Field(default_factory=list)
    fidelity: list[FidelitySpec] = Field(default_factory=list)
    diversity: list[DiversitySpec] = Field(default_factory=list)
    memorization: list[MemorizationSpec] = Field(default_factory=list)
    demographic: list[DemographicSpec] = Field(default_factory=list)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    judges: dict[str, JudgeSpec] = Field(default_factory=dict)
    #: reader-study labels (docs/reader.md); a relative path is relative to the spec file
    reader: ReaderSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _tables_or_arrays(cls, data: Any) -> Any:
        # accept [tool.synthcxr.validity] (one table) as well as [[tool.synthcxr.validity]] (array)
        if isinstance(data, dict):
            data = dict(data)
            for key in ("bias", "validity", "uncertainty", "hallucination", "fuzz", *REFERENCE_SECTIONS):
                if isinstance(data.get(key), dict):
                    data[key] = [data[key]]
        return data

    @model_validator(mode="after")
    def _ages_for_age_checks(self) -> "AuditSpec":
        if any(d.attribute == "age" for d in self.demographic) and not self.subgroups.age:
            raise ValueError("demographic attribute 'age' needs ages to ask for: set subgroups.age (e.g. [40, 60, 80])")
        for output, entry in self.judge_error.items():
            if entry.reference and output in PROBES:
                raise ValueError(
                    f"judge_error.{output}: reference = true measures the judge on reference labels, and reference sets "
                    f"label findings only, not {output}; give its counts (tp, fn, tn, fp) from a labelled validation set"
                )
        readers = [f"bias[{k}]" for k, b in enumerate(self.bias) if b.verdict == "reader"]
        readers += [f"validity[{k}]" for k, v in enumerate(self.validity) if v.verdict == "reader"]
        readers += [f"hallucination[{k}]" for k, h in enumerate(self.hallucination) if h.verdict == "reader"]
        if readers and self.reader is None:
            raise ValueError(f"{readers[0]}: verdict = \"reader\" needs reader labels: add [reader] labels = \"path/to/reader-labels.sqlite\" (or its CSV export)")
        if self.subgroups.age and not self.demographic:
            raise ValueError("subgroups.age names ages for the demographic-fidelity prompts only, and there is no [[demographic]] item")
        for k, b in enumerate(self.bias):  # a gap, ratio or deviation over one subgroup compares nothing
            groups = 1
            for attribute in b.by:
                groups *= len(set(getattr(self.subgroups, attribute)))
            if b.statistic != "prompt-effect" and groups < 2:
                raise ValueError(
                    f"bias[{k}]: a {b.statistic} compares subgroups, but by = {'*'.join(b.by)} gives only one "
                    f"({', '.join(f'{a} = {getattr(self.subgroups, a)}' for a in b.by)}); list at least two in [subgroups]"
                )
        return self


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and where it came from (for the report header and error messages)."""

    spec: AuditSpec
    path: Path | None  # None: the packaged default
    table: str  # "[tool.synthcxr]" or "" (top level)
    sha256: str

    @property
    def display(self) -> str:
        return str(self.path) if self.path else "<built-in default spec>"


def default_spec_text() -> str:
    return resources.files(__package__).joinpath("default_spec.toml").read_text(encoding="utf-8")


def read_raw(path: Path | None) -> tuple[dict[str, Any], str, bytes]:
    """The spec's table as a dict, the table name, and the file's bytes (for hashing)."""
    if path is None:
        text = default_spec_text()
        data, shown = tomllib.loads(text), "<built-in default spec>"
        raw = text.encode()
    else:
        if not path.is_file():
            raise SpecError(ERR_MISSING.format(path=path))
        raw = path.read_bytes()
        shown = str(path)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(ERR_TOML.format(path=shown, error=exc)) from exc
    tool = data.get("tool", {})
    if isinstance(tool, dict) and "synthcxr" in tool:
        return tool["synthcxr"], "tool.synthcxr", raw
    if path is not None and path.name == "pyproject.toml":
        raise SpecError(ERR_NO_TABLE.format(path=shown))
    return data, "", raw


def load_spec(path: Path | None) -> LoadedSpec:
    data, table, raw = read_raw(path)
    shown = str(path) if path else "<built-in default spec>"
    try:
        spec = AuditSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_one_line(exc, shown, table)) from None
    if spec.reader is not None and path is not None and not Path(spec.reader.labels).expanduser().is_absolute():
        # like every other path in a spec: relative to the spec file, not to where pytest runs
        labels = str(path.parent / Path(spec.reader.labels).expanduser())
        spec = spec.model_copy(update={"reader": spec.reader.model_copy(update={"labels": labels})})
    return LoadedSpec(spec, path, table, hashlib.sha256(raw).hexdigest())


def _one_line(exc: ValidationError, shown: str, table: str) -> str:
    """The first validation error as 'file: key: what is wrong (allowed: ...)'."""
    error = exc.errors(include_url=False)[0]
    loc = error["loc"]
    key = table
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif not str(part).startswith(("literal[", "list[", "function-", "[key]")):
            key += f".{part}" if key else str(part)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        message = f"unknown key; allowed keys: {', '.join(allowed)}"
    elif error["type"] == "literal_error":
        message = f"{message} (got {error.get('input')!r})"
    elif error["type"] not in ("value_error", "missing"):
        message = f"{message} (got {error.get('input')!r})"
    message = message.removeprefix("Value error, ")
    return ERR_KEY.format(path=shown, key=key or "(top level)", message=message)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = AuditSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            break
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) + (annotation,):
            inner = getattr(candidate, "__args__", (candidate,))[0] if hasattr(candidate, "__args__") else candidate
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                model = inner
                break
    return sorted(model.model_fields)
