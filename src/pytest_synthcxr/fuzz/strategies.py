"""Hypothesis strategies for radiology-style chest X-ray prompts and counterfactual pairs.

Public API (``hypothesis`` is required only by this module)::

    from hypothesis import given
    from pytest_synthcxr import strategies as cxr

    @given(cxr.prompts())                      # plain strings
    def test_reads_any_prompt(text): ...

    @given(cxr.prompt_specs(demographics="always"))   # PromptSpec: .text and .expected
    def test_spec(spec): assert parse_prompt(spec.text) == spec.expected

    @given(cxr.counterfactual_pairs(attributes=("sex", "race")))
    def test_swap(pair): pair.base.text, pair.changed.text, pair.attribute

Prompts use the project's vocabulary (:mod:`pytest_synthcxr.spec.vocabulary`,
:data:`pytest_synthcxr.sampling.prompts.SYNONYMS`): one or several findings, each with an optional side
("left", "right-sided", "bilateral", "bibasilar"), severity word and lobe; negated findings
("No pleural effusion or pneumothorax."); an optional demographic phrase with age, race and sex in
the phrasings real reports and RoentGen-v2 prompts use ("45 year old Hispanic female.",
"67-year-old African American man with ..."); sentence order, separators and letter case vary.
Every prompt is built so that :func:`pytest_synthcxr.sampling.prompts.parse_prompt` reads back exactly
what the spec means (:attr:`PromptSpec.expected`), and a counterfactual pair differs in exactly
one attribute (sex, race, age band, laterality of one finding, or the wording of one finding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hypothesis import strategies as st

from ..sampling.prompts import NORMAL_PROMPT, SEVERITY_WORDS, SYNONYMS, ParsedPrompt
from ..spec.vocabulary import FINDINGS, LATERAL_FINDINGS, RACES, SEXES

#: words a prompt may use for each sex and race (all read back by parse_prompt)
SEX_WORDS: dict[str, tuple[str, ...]] = {"female": ("female", "woman"), "male": ("male", "man")}
RACE_WORDS: dict[str, tuple[str, ...]] = {
    "White": ("White", "Caucasian"),
    "Black": ("Black", "African American", "African-American"),
    "Asian": ("Asian",),
    "Hispanic": ("Hispanic", "Latinx"),
}
#: age bands for the "age" counterfactual (inclusive)
AGE_BANDS: tuple[tuple[int, int], ...] = ((18, 39), (40, 64), (65, 90))
AGE_FORMATS: tuple[str, ...] = ("{} year old", "{}-year-old", "{} yr old", "{} years old")
#: side words and the laterality parse_prompt reads from them
SIDE_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("left", "left-sided"),
    "right": ("right", "right-sided"),
    "bilateral": ("bilateral", "bibasilar"),
}
LOCATIONS: tuple[str, ...] = ("lower lobe", "upper lobe", "basilar", "apical")
NEGATION_OPENERS: tuple[str, ...] = ("No", "No evidence of", "Without", "Negative for", "Free of")
SEPARATORS: tuple[str, ...] = (". ", "; ", ".\n", ".  ")
CASES: tuple[str, ...] = ("sentence", "lower", "upper")
ATTRIBUTES: tuple[str, ...] = ("sex", "race", "age", "laterality", "paraphrase")


def age_band(age: int) -> int:
    """Index of the band in AGE_BANDS holding this age."""
    return next(i for i, (low, high) in enumerate(AGE_BANDS) if low <= age <= high)


@dataclass(frozen=True)
class Mention:
    """One requested finding as written: 'small left lower lobe pleural effusion'."""

    finding: str
    phrase: str
    side: str | None = None  # a key of SIDE_WORDS
    side_word: str | None = None
    severity: str | None = None  # a key of SEVERITY_WORDS
    location: str | None = None

    @property
    def text(self) -> str:
        words = [self.severity, self.side_word, self.location if self.side else None, self.phrase]
        return " ".join(w for w in words if w)


@dataclass(frozen=True)
class Demographics:
    """Who the prompt names; `None` values are left out of the phrase."""

    age: int | None = None
    age_format: str = AGE_FORMATS[0]
    sex: str | None = None
    sex_word: str | None = None
    race: str | None = None
    race_word: str | None = None

    @property
    def text(self) -> str:
        words = [self.age_format.format(self.age) if self.age is not None else None, self.race_word, self.sex_word]
        return " ".join(w for w in words if w)


@dataclass(frozen=True)
class PromptSpec:
    """What a generated prompt means, and how it is written (:attr:`text`)."""

    mentions: tuple[Mention, ...] = ()
    negated: tuple[tuple[str, str], ...] = ()  # (finding, phrase)
    negation_opener: str = "No"
    demographics: Demographics | None = None
    demographics_first: bool = True
    with_first: bool = False  # "45 year old woman with <first finding>" instead of its own sentence
    separator: str = ". "
    case: str = "sentence"
    final_period: bool = True

    @property
    def sentences(self) -> list[str]:
        body = [m.text for m in self.mentions]
        if self.negated:
            body.append(f"{self.negation_opener} " + " or ".join(phrase for _, phrase in self.negated))
        if not body:
            body = [NORMAL_PROMPT.rstrip(".")]
        demo = self.demographics.text if self.demographics is not None else ""
        if not demo:
            return body
        if self.with_first and self.mentions:
            return [f"{demo} with {body[0]}", *body[1:]]
        return [demo, *body] if self.demographics_first else [*body, demo]

    @property
    def text(self) -> str:
        parts = [_case(s, self.case) for s in self.sentences]
        return self.separator.join(parts) + ("." if self.final_period else "")

    @property
    def expected(self) -> ParsedPrompt:
        """What parse_prompt must read from :attr:`text`."""
        d = self.demographics or Demographics()
        return ParsedPrompt(
            findings={m.finding: m.side for m in self.mentions},
            negated=frozenset(name for name, _ in self.negated),
            severity={m.finding: SEVERITY_WORDS[m.severity] for m in self.mentions if m.severity},
            sex=d.sex,
            race=d.race,
            age=d.age,
        )

    @property
    def requested(self) -> tuple[str, ...]:
        return tuple(m.finding for m in self.mentions)


@dataclass(frozen=True)
class CounterfactualPair:
    """Two prompts differing in exactly one attribute: `before` in `base`, `after` in `changed`."""

    base: PromptSpec
    changed: PromptSpec
    attribute: str  # one of ATTRIBUTES, or "negation" (negation_pairs)
    before: str
    after: str
    detail: dict[str, str] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.attribute}: {self.before} -> {self.after}\n  {self.base.text!r}\n  {self.changed.text!r}"


def _case(sentence: str, case: str) -> str:
    if case == "lower":
        return sentence.lower()
    if case == "upper":
        return sentence.upper()
    return sentence[:1].upper() + sentence[1:]


@st.composite
def mentions(
    draw: st.DrawFn, finding: str | st.SearchStrategy[str] | None = None, *, laterality: str | None = None, modifiers: bool = True
) -> Mention:
    """One finding as written, with optional side, severity word and lobe (modifiers=False: the
    bare phrase, a synonym of the finding)."""
    name = finding if isinstance(finding, str) else draw(finding if finding is not None else st.sampled_from(FINDINGS))
    phrase = draw(st.sampled_from(SYNONYMS[name]))
    if not modifiers:
        return Mention(name, phrase)
    side = side_word = location = None
    if name in LATERAL_FINDINGS:
        side = laterality if laterality is not None else draw(st.none() | st.sampled_from(tuple(SIDE_WORDS)))
        if side is not None:
            side_word = draw(st.sampled_from(SIDE_WORDS[side]))
            location = draw(st.none() | st.sampled_from([loc for loc in LOCATIONS if loc not in side_word]))  # no "bibasilar basilar"
    severity = draw(st.none() | st.sampled_from(tuple(SEVERITY_WORDS)))
    return Mention(name, phrase, side, side_word, severity, location)


@st.composite
def demographics(draw: st.DrawFn, *, sex: bool | None = None, race: bool | None = None, age: bool | None = None) -> Demographics:
    """A demographic phrase; True: always named, False: never, None: maybe."""

    def named(flag: bool | None) -> bool:
        return flag if flag is not None else draw(st.booleans())

    d = Demographics()
    if named(age):
        d = replace(d, age=draw(st.integers(AGE_BANDS[0][0], AGE_BANDS[-1][1])), age_format=draw(st.sampled_from(AGE_FORMATS)))
    if named(sex):
        value = draw(st.sampled_from(SEXES))
        d = replace(d, sex=value, sex_word=draw(st.sampled_from(SEX_WORDS[value])))
    if named(race):
        value = draw(st.sampled_from(RACES))
        d = replace(d, race=value, race_word=draw(st.sampled_from(RACE_WORDS[value])))
    return d


@st.composite
def prompt_specs(
    draw: st.DrawFn,
    *,
    findings: Sequence[str] = FINDINGS,
    min_findings: int = 0,
    max_findings: int = 3,
    max_negated: int = 2,
    demographics: str = "maybe",
    sex: bool | None = None,
    race: bool | None = None,
    age: bool | None = None,
    layout: bool = True,
    modifiers: bool = True,
) -> PromptSpec:
    """A prompt (:class:`PromptSpec`) asking for distinct findings from `findings`, negating others.

    demographics: "always" (sex and race named; age maybe), "never", or "maybe"; `sex`, `race`,
    `age` (True/False) override it per attribute. layout=False keeps RoentGen-v2's shape
    ("45 year old Hispanic female. Pleural effusion.") instead of varying order, case and
    punctuation; modifiers=False writes findings without side, severity or lobe.
    """
    names = draw(st.lists(st.sampled_from(tuple(findings)), min_size=min_findings, max_size=max_findings, unique=True))
    chosen = tuple(draw(mentions(name, modifiers=modifiers)) for name in names)
    rest = [f for f in FINDINGS if f not in names]
    negated_names = draw(st.lists(st.sampled_from(rest), max_size=min(max_negated, len(rest)), unique=True)) if rest and max_negated else []
    negated = tuple((name, draw(st.sampled_from(SYNONYMS[name]))) for name in negated_names)
    defaults = {"always": (True, True, None), "never": (False, False, False), "maybe": (None, None, None)}[demographics]
    flags = [given if given is not None else default for given, default in zip((sex, race, age), defaults)]
    demo = draw(_demographics(sex=flags[0], race=flags[1], age=flags[2]))
    spec = PromptSpec(chosen, negated, draw(st.sampled_from(NEGATION_OPENERS)), demo if demo.text else None)
    if layout:
        spec = replace(
            spec,
            demographics_first=draw(st.booleans()),
            with_first=draw(st.booleans()),
            separator=draw(st.sampled_from(SEPARATORS)),
            case=draw(st.sampled_from(CASES)),
            final_period=draw(st.booleans()),
        )
    return spec


_demographics = demographics  # prompt_specs' keyword argument shadows the strategy's name


def prompts(**kwargs: object) -> st.SearchStrategy[str]:
    """Prompt strings; takes prompt_specs' keyword arguments."""
    return prompt_specs(**kwargs).map(lambda spec: spec.text)  # type: ignore[arg-type]


@st.composite
def counterfactual_pairs(draw: st.DrawFn, attributes: Sequence[str] = ATTRIBUTES, **kwargs: object) -> CounterfactualPair:
    """A prompt and the same prompt with exactly one attribute changed (see ATTRIBUTES).

    Other keyword arguments go to prompt_specs; the base prompt is drawn so that the chosen
    attribute is present (a sex swap needs a named sex, a laterality swap a sided finding).
    """
    unknown = set(attributes) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown counterfactual attributes {sorted(unknown)}; known: {list(ATTRIBUTES)}")
    attribute = draw(st.sampled_from(tuple(attributes)))
    if attribute in ("sex", "race", "age"):
        kwargs = {**kwargs, attribute: True}
    else:
        kwargs = {**kwargs, "min_findings": max(1, int(kwargs.get("min_findings", 0)))}  # type: ignore[call-overload]
    if attribute == "laterality":
        allowed = [f for f in kwargs.get("findings", FINDINGS) if f in LATERAL_FINDINGS]  # type: ignore[union-attr]
        base = draw(prompt_specs(**kwargs).filter(lambda s: any(m.finding in allowed for m in s.mentions)))  # type: ignore[arg-type]
    else:
        base = draw(prompt_specs(**kwargs))  # type: ignore[arg-type]
    d = base.demographics or Demographics()
    if attribute == "sex":
        assert d.sex is not None
        new = SEXES[1 - SEXES.index(d.sex)]
        word = SEX_WORDS[new][SEX_WORDS[d.sex].index(d.sex_word or d.sex)]  # same style: woman <-> man
        return CounterfactualPair(base, replace(base, demographics=replace(d, sex=new, sex_word=word)), "sex", d.sex, new)
    if attribute == "race":
        assert d.race is not None
        new = draw(st.sampled_from([r for r in RACES if r != d.race]))
        word = draw(st.sampled_from(RACE_WORDS[new]))
        return CounterfactualPair(base, replace(base, demographics=replace(d, race=new, race_word=word)), "race", d.race, new)
    if attribute == "age":
        assert d.age is not None
        band = draw(st.sampled_from([i for i in range(len(AGE_BANDS)) if i != age_band(d.age)]))
        new_age = draw(st.integers(*AGE_BANDS[band]))
        return CounterfactualPair(base, replace(base, demographics=replace(d, age=new_age)), "age", str(d.age), str(new_age))
    if attribute == "laterality":
        index = draw(st.sampled_from([i for i, m in enumerate(base.mentions) if m.finding in LATERAL_FINDINGS]))
        old = base.mentions[index]
        if old.side is None:  # give the base a side first, so that only the side differs
            side = draw(st.sampled_from(tuple(SIDE_WORDS)))
            old = replace(old, side=side, side_word=SIDE_WORDS[side][0])
            base = replace(base, mentions=_put(base.mentions, index, old))
        assert old.side is not None
        new_side = draw(st.sampled_from([s for s in SIDE_WORDS if s != old.side]))
        new = replace(old, side=new_side, side_word=draw(st.sampled_from(SIDE_WORDS[new_side])))
        pair_detail = {"finding": old.finding}
        return CounterfactualPair(base, replace(base, mentions=_put(base.mentions, index, new)), "laterality", old.side, new_side, pair_detail)
    index = draw(st.integers(0, len(base.mentions) - 1))
    old = base.mentions[index]
    phrase = draw(st.sampled_from([p for p in SYNONYMS[old.finding] if p != old.phrase]))
    new = replace(old, phrase=phrase)
    changed = replace(base, mentions=_put(base.mentions, index, new))
    return CounterfactualPair(base, changed, "paraphrase", old.phrase, phrase, {"finding": old.finding})


@st.composite
def negation_pairs(draw: st.DrawFn, finding: str, **kwargs: object) -> CounterfactualPair:
    """A prompt that negates `finding` ("No pleural effusion.") and the same prompt without that
    clause (attribute "negation"): on the same seeds, the first must not draw the finding more
    often than the second. Other keyword arguments go to prompt_specs (its findings never include
    `finding`; other findings may be requested or negated too)."""
    if finding not in SYNONYMS:
        raise ValueError(f"unknown finding {finding!r}; known: {sorted(SYNONYMS)}")
    others = [f for f in kwargs.pop("findings", FINDINGS) if f != finding]  # type: ignore[attr-defined]
    without = draw(prompt_specs(findings=others, **kwargs))  # type: ignore[arg-type]
    without = replace(without, negated=tuple((f, p) for f, p in without.negated if f != finding))
    phrase = draw(st.sampled_from(SYNONYMS[finding]))
    negated = ((finding, phrase), *without.negated)
    with_negation = replace(without, negated=negated)
    return CounterfactualPair(with_negation, without, "negation", f"no {phrase}", "", {"finding": finding})


@st.composite
def side_pairs(draw: st.DrawFn, finding: str, **kwargs: object) -> CounterfactualPair:
    """A prompt asking for `finding` on the patient's left or right ("left pleural effusion") and
    the same prompt without it (attribute "laterality"; detail: the finding, its phrase and the
    hemithorax to check, the other one). On the same seeds, the first must not show the finding
    on the other side more often than the second. Other keyword arguments go to prompt_specs
    (its findings never include `finding`)."""
    if finding not in LATERAL_FINDINGS:
        raise ValueError(f"{finding!r} is not drawn on one side; lateral findings: {sorted(LATERAL_FINDINGS)}")
    others = [f for f in kwargs.pop("findings", FINDINGS) if f != finding]  # type: ignore[attr-defined]
    without = draw(prompt_specs(findings=others, **kwargs))  # type: ignore[arg-type]
    without = replace(without, negated=tuple((f, p) for f, p in without.negated if f != finding))
    side = draw(st.sampled_from(("left", "right")))
    mention = draw(mentions(finding, laterality=side, modifiers=bool(kwargs.get("modifiers", True))))
    if mention.side != side:  # modifiers=False: a bare phrase; give it its side word only
        mention = replace(mention, side=side, side_word=SIDE_WORDS[side][0], location=None)
    index = draw(st.integers(0, len(without.mentions)))
    with_side = replace(without, mentions=without.mentions[:index] + (mention,) + without.mentions[index:])
    other = "right" if side == "left" else "left"
    detail = {"finding": finding, "phrase": mention.text, "checked": other}
    return CounterfactualPair(with_side, without, "laterality", side, "", detail)


def _put(items: tuple[Mention, ...], index: int, item: Mention) -> tuple[Mention, ...]:
    return items[:index] + (item,) + items[index + 1 :]


__all__ = [
    "AGE_BANDS",
    "ATTRIBUTES",
    "CounterfactualPair",
    "Demographics",
    "Mention",
    "PromptSpec",
    "counterfactual_pairs",
    "demographics",
    "mentions",
    "negation_pairs",
    "prompt_specs",
    "prompts",
    "side_pairs",
]
