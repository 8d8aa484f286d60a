"""Fuzz items: ``[[tool.synthcxr.fuzz]]`` sections expanded into one check per (property, finding),
and the rule that decides whether one paired example falsifies its property.

No hypothesis, no I/O here (the search runs in :mod:`pytest_synthcxr.fuzz.sampler`): this module only
says what an item tests and how one example's paired numbers are judged.

An example is a counterfactual prompt pair generated on the same ``samples`` seeds. It falsifies
the property only when the data show the change of the judge's rate of the finding (A - B,
paired decisions) is larger than ``delta``: the one-sided bound of Newcombe's paired interval at
level ``alpha / max_examples`` (Bonferroni over the examples the search may try) lies beyond
delta. A model exactly at delta is then falsified by one example with probability at most
alpha / max_examples, so a model within delta fails an item with probability at most about
alpha. (McNemar's test of "no change" is still shown, descriptive only: a change smaller than
delta is allowed, so rejecting "no change" never falsifies; the earlier rule did, and falsified
a model exactly at delta 42-46% of the time at larger n.) Two-sided properties (demographic and
paraphrase invariance) compare |A - B| with delta; negation and laterality are one-sided: the
prompt saying "no X" must not draw X more often than the same prompt without that clause, and
the prompt asking for X on one side must not show X on the *other* hemithorax more often than
the same prompt without X (the judge sees each hemithorax mirrored into a whole chest, see
:func:`pytest_synthcxr.fuzz.sampler.hemithoraces`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ..stats.paired import PairedComparison
from ..stats.intervals import Estimate
from ..spec.vocabulary import LATERAL_FINDINGS
from .base import Check, Result

Property = Literal["demographic-invariance", "negation", "paraphrase-invariance", "laterality"]
PROPERTIES: tuple[str, ...] = ("demographic-invariance", "negation", "paraphrase-invariance", "laterality")
TWO_SIDED = frozenset({"demographic-invariance", "paraphrase-invariance"})


@dataclass(frozen=True)
class FuzzCheck(Check):
    """One fuzz item: a property of prompt pairs about one finding, searched by hypothesis."""

    family = "fuzz"
    prop: str = "demographic-invariance"  # the spec key "property"
    finding: str = ""
    max_examples: int = 20
    #: demographic-invariance: attributes a pair may swap (sex, race, age)
    attributes: tuple[str, ...] = ("sex", "race")
    #: other findings the prompt may negate ("No pneumothorax.")
    negations: int = 1
    #: vary sentence order, punctuation and case; write side, severity and lobe words
    layout: bool = True
    modifiers: bool = True

    @property
    def quantity(self) -> str:
        what = {
            "demographic-invariance": f"change of the {self.finding} rate when {' or '.join(self.attributes)} is swapped",
            "negation": f"excess {self.finding} rate when the prompt says 'no {self.finding}'",
            "paraphrase-invariance": f"change of the {self.finding} rate when its wording is paraphrased",
            "laterality": f"excess {self.finding} rate on the hemithorax opposite the one the prompt asks for",
        }[self.prop]
        return f"{what} (paired, same seeds)"

    def cells(self) -> tuple[Any, ...]:
        return ()  # fuzz items generate their own prompts (PairedSampler), never pool cells

    def example_alpha(self, confidence: float) -> float:
        """One example's one-sided level (Bonferroni over the examples the search may try)."""
        return (1 - confidence) / self.max_examples

    def interval_alpha(self, confidence: float) -> float:
        """Alpha of the two-sided paired interval whose bounds are one-sided bounds at
        example_alpha (each tail gets example_alpha)."""
        return min(1.0, 2 * self.example_alpha(confidence))


@dataclass(frozen=True)
class Judged:
    """One example's paired numbers, and whether it falsifies the property."""

    comparison: PairedComparison
    #: what is compared with delta: |A - B| (two-sided) or A - B (negation), with its interval
    size: Estimate
    falsified: bool

    @property
    def score(self) -> float:
        """How close to failing (for hypothesis.target): the size's lower bound minus delta."""
        return self.size.low if math.isfinite(self.size.low) else -1.0


def size_of(check: FuzzCheck, d: Estimate) -> Estimate:
    """What is compared with delta, from the paired difference A - B and its interval: |A - B|
    for two-sided properties (interval: the image of the difference's interval under abs), A - B
    itself for negation."""
    if check.prop not in TWO_SIDED:
        return d
    if d.low >= 0:
        return Estimate(abs(d.value), d.low, d.high, d.n)
    if d.high <= 0:
        return Estimate(abs(d.value), -d.high, -d.low, d.n)
    return Estimate(abs(d.value), 0.0, max(-d.low, d.high), d.n)


def judge_example(check: FuzzCheck, comparison: PairedComparison, confidence: float) -> Judged:
    """The falsification rule of the module docstring applied to one example's paired decisions
    (`comparison` made at level check.interval_alpha(confidence)): falsified when the interval of
    the compared size lies wholly above delta."""
    size = size_of(check, comparison.difference)
    falsified = bool(comparison.difference.n and size.low > check.threshold)
    return Judged(comparison, size, falsified)


@dataclass(frozen=True)
class FuzzResult(Result):
    """A fuzz item's result: the numbers of its shrunk (or, on a pass, its worst) example."""

    fuzz: dict[str, Any] | None = None

    def message(self) -> str:
        """One line: the shrunk pair's change, its paired numbers and both prompts."""
        f = self.fuzz or {}
        x = f.get("example")
        if self.verdict != "fail" or not x:
            return super().message()
        level = f"{1 - f['alpha']:.1%}".replace(".0%", "%")
        return (
            f"fail: {x['change']} moves the {f['finding']} rate by {x['difference']:+.3f} "
            f"({x['rate_a']:.3f} vs {x['rate_b']:.3f}; {level} CI {x['difference_low']:+.3f}, {x['difference_high']:+.3f}) "
            f"beyond delta {self.threshold:g} on {x['n']} paired seeds, discordant {x['only_a']}/{x['only_b']}; shrunk after {f['examples']} examples: {x['base']!r} vs {x['changed']!r}"
        )

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        out["fuzz"] = self.fuzz
        return out


def build_fuzz_checks(spec: Any) -> list[FuzzCheck]:
    """Expand every [[fuzz]] section into one check per finding, in spec order, with unique names."""
    checks: list[FuzzCheck] = []
    for section in getattr(spec, "fuzz", ()):
        findings = section.findings or [f for f in spec.findings if section.property != "laterality" or f in LATERAL_FINDINGS]
        for finding in findings:
            checks.append(
                FuzzCheck(
                    name=f"{section.property}-{finding}",
                    samples=section.samples,
                    threshold=section.delta,
                    direction="max",
                    prop=section.property,
                    finding=finding,
                    max_examples=section.max_examples,
                    attributes=tuple(section.attributes),
                    negations=section.negations,
                    layout=section.layout,
                    modifiers=section.modifiers,
                )
            )
    seen: dict[str, int] = {}
    for check in checks:
        if check.name in seen:
            seen[check.name] += 1
            object.__setattr__(check, "name", f"{check.name}-{seen[check.name]}")
        else:
            seen[check.name] = 0
    return checks


__all__ = ["PROPERTIES", "FuzzCheck", "FuzzResult", "Judged", "build_fuzz_checks", "judge_example", "size_of"]
