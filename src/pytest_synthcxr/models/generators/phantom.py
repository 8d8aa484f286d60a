"""The phantom generator: renders what a prompt asks for, with planted, known faults.

Faults (per preset):
- omission: probability of leaving out a requested finding, per subgroup when the prompt names
  sex and race (bias, and the prompt-demographics effect), and a default for plain prompts;
- hallucination: probability of adding an unrequested finding or probe (e.g. COVID-19);
- ghosts: faint, ambiguous versions of unrequested findings that make the judge uncertain;
- age_ignored: probability of drawing a random age when the prompt names one.
Every random draw comes from the image's seed, in a fixed order, so two prompts that differ in
one word share the same draws (what counterfactual pairs need).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...phantom.render import Scene, render
from ...sampling.prompts import ParsedPrompt, parse_prompt
from ...spec.vocabulary import FINDINGS, PROBES, SEXES

_ALL = FINDINGS + PROBES


@dataclass(frozen=True)
class PhantomFaults:
    omission: float = 0.0
    #: omission when the prompt names this (sex, race); falls back to omission_named_default
    omission_named: Mapping[str, float] = field(default_factory=dict)  # "female/Hispanic" -> p
    omission_named_default: float | None = None
    hallucination: Mapping[str, float] = field(default_factory=dict)
    #: probability, when the prompt names an age, of drawing a random age (25 to 85) instead
    age_ignored: float = 0.0
    severity: tuple[float, float] = (0.8, 1.2)
    noise: tuple[float, float] = (0.015, 0.025)
    #: probability, per finding the prompt did not ask for, of a faint ambiguous version of it
    #: (drawn at ghost_severity, where the judge is unsure): the planted uncertainty fault
    ghost: float = 0.0
    #: ghost probability when the prompt names sex and race (None: `ghost`); drawn from the same
    #: uniform, so plain-prompt images are untouched. phantom-biased uses it to plant the published
    #: relative SR deviation (fewer faint false calls under named prompts: the SR then follows the
    #: planted TPRs more closely)
    ghost_named: float | None = None
    ghost_severity: tuple[float, float] = (0.15, 0.25)
    #: plain prompts only: omission by the sex the phantom draws for the patient (the image shows
    #: it; an attribute judge reads it back), falling back to `omission`. phantom-biased plants a
    #: perceived-sex disparity with it, for bias items on prompts that name no demographics
    omission_drawn_sex: Mapping[str, float] = field(default_factory=dict)
    #: same-seed coupling: the probability that two prompts differing in their demographic words
    #: (sex, race, age; or naming none) share every random draw of an image (omissions, ghosts,
    #: severity, noise, anatomy) on the same seed; otherwise the demographic words pick an
    #: independent stream. 1: a word changes only what it names (the renderer's counterfactual
    #: pairs); 0: same-seed images are as unrelated as different seeds. A real diffusion model
    #: sits in between (the same noise under other words changes the image partly).
    coupling: float = 1.0
    #: per finding, the severities where the shipped phantom judge is least sure (measured
    #: entropy peaks, noise 0.02); re-measure after retraining the judge
    ghost_severity_of: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "Atelectasis": (0.08, 0.2),
            "Cardiomegaly": (0.12, 0.28),
            "Consolidation": (0.18, 0.27),
            "Edema": (0.12, 0.23),
            "Effusion": (0.18, 0.24),
            "Pneumothorax": (0.13, 0.21),
        }
    )

    def omission_for(self, parsed: ParsedPrompt, drawn_sex: str | None = None) -> float:
        if not parsed.names_demographics:
            return self.omission_drawn_sex.get(drawn_sex or "", self.omission)
        key = f"{parsed.sex}/{parsed.race}"
        if key in self.omission_named:
            return self.omission_named[key]
        return self.omission if self.omission_named_default is None else self.omission_named_default


#: omission of the fair world: real judges on real generators find 0.44-0.64 of the requested
#: findings (the published audit), so a fair model's TPR sits near 0.6, not near 1
FAIR_OMISSION = 0.4
#: same-seed coupling of the fair and biased presets: no published measurement says how often a
#: real diffusion model's omission survives a change of demographic words under the same noise,
#: so the presets take the middle (half the pairs share every draw, half share none); the pairing
#: benchmarks report 0, 0.25, 0.5, 0.75 and 1 as well (benchmarks/paired_bias.py)
PRESET_COUPLING = 0.5

PRESETS: dict[str, PhantomFaults] = {
    "phantom": PhantomFaults(),
    # A fair but imperfect model-plus-judge system: 40% of requested findings are left out (TPR
    # about 0.6), the same for every subgroup, with or without demographics in the prompt; no
    # other fault. A bias gate must pass it: a gate that only passes TPR near 1 blocks every real model.
    "phantom-fair": PhantomFaults(omission=FAIR_OMISSION, coupling=PRESET_COUPLING),
    # Mirrors the published RoentGen audit (arXiv 2312.06979): with sex and race in the prompt,
    # TPR about 0.44 for Hispanic women vs 0.64 for White women (0.56 Asian women); about 42% of
    # images flagged as COVID-19; fainter findings in noisier images (more judge uncertainty).
    # phantom-fair with one planted regression (issue 18: candidate vs released): Hispanic women's
    # named-prompt omission 0.6 instead of 0.4, a TPR 0.2 lower (times the judge's sensitivity)
    # for that subgroup only; every other draw is phantom-fair's, so against phantom-fair as the
    # released model only the comparisons that involve that subgroup regress
    "phantom-regressed": PhantomFaults(omission=FAIR_OMISSION, omission_named={"female/Hispanic": 0.6}, coupling=PRESET_COUPLING),
    # Shares phantom-fair's imperfection (omission 0.4 for plain prompts, coupling 0.5) and adds
    # the planted disparities: the named-prompt TPRs below, and for plain prompts more omissions
    # for women (0.7 against 0.4: a perceived-sex TPR gap of about 0.27 through the phantom judge).
    "phantom-biased": PhantomFaults(
        omission=FAIR_OMISSION,
        omission_drawn_sex={"female": 0.7},
        coupling=PRESET_COUPLING,
        omission_named={
            "female/White": 0.36,
            "female/Black": 0.38,
            "female/Asian": 0.44,
            "female/Hispanic": 0.56,
            "male/White": 0.26,
            "male/Black": 0.30,
            "male/Asian": 0.30,
            "male/Hispanic": 0.32,
        },
        hallucination={"COVID-19": 0.42},
        age_ignored=0.3,  # not from the published audit: a demographic-fidelity fault to find
        severity=(0.6, 1.1),
        noise=(0.03, 0.05),
        ghost=0.3,
        # with names in the prompt: SR of Hispanic women 26% below White women's, as published
        # (SR counts faint false calls too; with ghost 0.3 they dilute the planted TPRs to ~20%)
        ghost_named=0.08,
    ),
}


def _words_key(parsed: ParsedPrompt) -> int:
    """A stream number from a prompt's demographic words only (not its findings)."""
    words = f"{parsed.sex}|{parsed.race}|{parsed.age}".encode()
    return int.from_bytes(hashlib.sha256(words).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class Drawn:
    """What the phantom actually rendered for one prompt and seed (the known truth)."""

    findings: Mapping[str, str | None]
    omitted: frozenset[str]
    added: frozenset[str]
    ghosts: frozenset[str]
    sex: str
    age: int


class PhantomGenerator:
    """Procedural CXR generator; `preset` picks the planted faults."""

    #: drawing a phantom (about 2 ms) is cheaper than reading its image back: the cache keeps scores only
    cache_images = False

    def __init__(self, preset: str = "phantom", faults: PhantomFaults | None = None, size: int = 224) -> None:
        if faults is None and preset not in PRESETS:
            raise KeyError(preset)
        self.name = preset
        self.faults = faults if faults is not None else PRESETS[preset]
        self.size = size

    @property
    def settings(self) -> dict[str, Any]:
        return {"preset": self.name, "size": self.size, "faults": json.loads(json.dumps(asdict(self.faults)))}

    @property
    def fingerprint(self) -> str:
        blob = json.dumps({"renderer": "phantom-v1", **self.settings}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def plan(self, prompt: str, seed: int) -> tuple[Scene, Drawn, np.random.Generator]:
        """Decide (without rendering) what this prompt and seed produce."""
        parsed = parse_prompt(prompt)
        # coupling: one uniform per seed (its own stream) decides whether this seed's images share
        # every draw whatever their demographic words, or draw from a stream those words select
        coupled = float(np.random.default_rng([seed, 2]).random()) < self.faults.coupling
        stream = [seed] if coupled else [seed, _words_key(parsed)]
        rng = np.random.default_rng(stream)
        # fixed number of draws in a fixed order, whatever the prompt says
        u_omit, u_add, u_ghost = rng.random(len(_ALL)), rng.random(len(_ALL)), rng.random(len(_ALL))
        u_faint = rng.random(len(_ALL))
        u_sex, age = rng.random(), int(rng.integers(25, 86))
        severity = float(rng.uniform(*self.faults.severity))
        noise = float(rng.uniform(*self.faults.noise))
        u_age = rng.random()  # drawn last: images of prompts without an age stay what they were
        sex = parsed.sex or SEXES[int(u_sex < 0.5)]
        p_omit = self.faults.omission_for(parsed, sex)
        p_ghost = self.faults.ghost if not parsed.names_demographics or self.faults.ghost_named is None else self.faults.ghost_named
        findings: dict[str, str | None] = {}
        severities: dict[str, float] = {}
        omitted, added, ghosts = set(), set(), set()
        for j, name in enumerate(_ALL):
            if name in parsed.findings:
                if u_omit[j] < p_omit:
                    omitted.add(name)
                else:
                    findings[name] = parsed.findings[name]
                    severities[name] = severity * parsed.severity.get(name, 1.0)
            elif name in parsed.negated:
                continue
            elif u_add[j] < self.faults.hallucination.get(name, 0.0):
                added.add(name)
                findings[name], severities[name] = None, severity
            elif name in FINDINGS and u_ghost[j] < p_ghost:  # probes stay clean: their rate is the hallucination
                ghosts.add(name)
                low, high = self.faults.ghost_severity_of.get(name, self.faults.ghost_severity)
                findings[name], severities[name] = None, float(low + (high - low) * u_faint[j])
        age = parsed.age if parsed.age is not None and u_age >= self.faults.age_ignored else age
        scene = Scene(findings=findings, sex=sex, age=age, severity=severities, noise=noise)
        drawn = Drawn({k: v for k, v in findings.items() if k not in ghosts}, frozenset(omitted), frozenset(added), frozenset(ghosts), sex, age)
        return scene, drawn, np.random.default_rng([*stream, 1])

    def draw(self, prompt: str, seed: int) -> tuple[np.ndarray, Drawn]:
        scene, drawn, rng = self.plan(prompt, seed)
        return render(scene, rng, self.size), drawn

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        out = np.empty((len(prompts), self.size, self.size), dtype=np.float32)
        for i, (prompt, seed) in enumerate(zip(prompts, seeds)):
            out[i] = self.draw(prompt, int(seed))[0]
        return out
