"""Radiology-style prompts: building them for cells and reading them back (for the phantom).

The same vocabulary serves both directions so that what the audit asks for is exactly what the
phantom generator understands; a real generator only ever sees the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..spec.vocabulary import FINDINGS, LATERAL_FINDINGS, PROBES

#: Canonical phrase used when the audit writes a prompt asking for a finding.
PHRASES: dict[str, str] = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "pulmonary edema",
    "Effusion": "pleural effusion",
    "Pneumothorax": "pneumothorax",
    "COVID-19": "COVID-19 pneumonia",
}

#: Every phrase a prompt may use for a finding (matched longest first, case-insensitive).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("atelectasis", "atelectatic change", "volume loss"),
    "Cardiomegaly": ("cardiomegaly", "enlarged cardiac silhouette", "enlarged heart", "cardiac enlargement"),
    "Consolidation": ("consolidation", "pneumonia", "airspace opacity", "airspace disease"),
    "Edema": ("pulmonary edema", "interstitial edema", "edema", "vascular congestion"),
    "Effusion": ("pleural effusion", "pleural effusions", "effusion", "effusions", "pleural fluid"),
    "Pneumothorax": ("pneumothorax", "collapsed lung"),
    "COVID-19": ("covid-19 pneumonia", "covid-19", "covid pneumonia", "covid", "sars-cov-2 pneumonia"),
}

NORMAL_PROMPT = "No acute cardiopulmonary process."
SEVERITY_WORDS: dict[str, float] = {"small": 0.7, "mild": 0.7, "moderate": 1.0, "large": 1.25, "severe": 1.25, "big": 1.25}

_NEGATION = re.compile(r"\b(no|without|negative for|free of|resolved)\b", re.IGNORECASE)
_SIDE = re.compile(r"\b(left|right|bilateral|bibasilar)\b", re.IGNORECASE)
_AGE = re.compile(r"\b(\d{1,3})[- ]?(?:year|yr)s?[- ]?old\b", re.IGNORECASE)
_SEX = {
    "female": re.compile(r"\b(female|woman|women|girl)\b", re.IGNORECASE),
    "male": re.compile(r"\b(male|man|men|boy)\b", re.IGNORECASE),
}
_RACE = {
    "White": re.compile(r"\b(white|caucasian)\b", re.IGNORECASE),
    "Black": re.compile(r"\b(black|african[- ]american)\b", re.IGNORECASE),
    "Asian": re.compile(r"\basian\b", re.IGNORECASE),
    "Hispanic": re.compile(r"\b(hispanic|latina|latino|latinx)\b", re.IGNORECASE),
}
_ALL_PHRASES = sorted(
    ((phrase, name) for name, phrases in SYNONYMS.items() for phrase in phrases),
    key=lambda pair: -len(pair[0]),
)


@dataclass(frozen=True)
class ParsedPrompt:
    """What a prompt asks for, as the phantom generator understands it."""

    findings: Mapping[str, str | None] = field(default_factory=dict)  # name -> laterality or None
    negated: frozenset[str] = frozenset()
    severity: Mapping[str, float] = field(default_factory=dict)
    sex: str | None = None
    race: str | None = None
    age: int | None = None

    @property
    def names_demographics(self) -> bool:
        return self.sex is not None or self.race is not None


def demographic_phrase(subgroup: Mapping[str, str], age: int | None = None) -> str:
    """'Hispanic female.' style opener, in the order RoentGen-v2 prompts use (age, race, sex):
    '60 year old Hispanic female.' when the subgroup (or `age`) carries an age in years."""
    words = []
    if age is None and subgroup.get("age"):
        age = int(subgroup["age"])
    if age is not None:
        words.append(f"{age} year old")
    if "race" in subgroup:
        words.append(subgroup["race"])
    if "sex" in subgroup:
        words.append(subgroup["sex"])
    return (" ".join(words) + ".") if words else ""


def build_prompt(finding: str | None, subgroup: Mapping[str, str] | None = None, *, laterality: str | None = None) -> str:
    """A report-style prompt asking for one finding (None: a normal study), optionally naming the subgroup."""
    if finding is None:
        body = NORMAL_PROMPT
    else:
        phrase = PHRASES[finding]
        if laterality and finding in LATERAL_FINDINGS:
            phrase = f"{laterality} {phrase}" if laterality == "bilateral" else f"{laterality}-sided {phrase}"
        body = phrase[0].upper() + phrase[1:] + "."
    opener = demographic_phrase(subgroup or {})
    return f"{opener} {body}" if opener else body


def parse_prompt(text: str) -> ParsedPrompt:
    """Read findings (with negation, laterality, severity) and demographics from a prompt."""
    findings: dict[str, str | None] = {}
    negated: set[str] = set()
    severity: dict[str, float] = {}
    for sentence in re.split(r"[.;\n]", text):
        lowered = sentence.lower()
        taken = [False] * len(lowered)
        for phrase, name in _ALL_PHRASES:
            for match in re.finditer(r"\b" + re.escape(phrase) + r"\b", lowered):
                start, end = match.span()
                if any(taken[start:end]):
                    continue  # part of a longer phrase already read ("covid-19 pneumonia")
                taken[start:end] = [True] * (end - start)
                before = lowered[:start]
                if _NEGATION.search(before):
                    negated.add(name)
                    continue
                sides = _SIDE.findall(before)
                side = sides[-1].lower() if sides else None
                findings[name] = "bilateral" if side == "bibasilar" else side
                for word, factor in SEVERITY_WORDS.items():
                    if re.search(rf"\b{word}\b", before):
                        severity[name] = factor
    age_match = _AGE.search(text)
    sex = next((value for value, pattern in _SEX.items() if pattern.search(text)), None)
    race = next((value for value, pattern in _RACE.items() if pattern.search(text)), None)
    return ParsedPrompt(
        findings={k: v for k, v in findings.items() if k not in negated},
        negated=frozenset(negated),
        severity=severity,
        sex=sex,
        race=race,
        age=int(age_match.group(1)) if age_match else None,
    )


__all__ = ["FINDINGS", "PROBES", "PHRASES", "SYNONYMS", "ParsedPrompt", "build_prompt", "parse_prompt", "demographic_phrase"]
