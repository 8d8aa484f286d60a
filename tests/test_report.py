"""The report (JSON, CSV, HTML, baseline comparison) on a stand-in world: no phantom, no torch.

The stand-in generator draws a band per finding that a prompt asks for (left out more often when
the prompt names Hispanic patients), and the stand-in judge reads the bands back, so the audit
has real bias, hallucination and invalid samples to report, in well under a second.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_synthcxr.report import writers as report
from pytest_synthcxr.sampling.cells import Cell
from pytest_synthcxr.sampling.pool import SamplePool
from pytest_synthcxr.sampling.prompts import parse_prompt
from pytest_synthcxr.report import baseline as compare
from pytest_synthcxr.plugin.session import AuditSession, RunOptions
from pytest_synthcxr.spec.schema import AuditSpec, LoadedSpec
from pytest_synthcxr.stats.intervals import binary_entropy, newcombe, wilson

OUTPUTS = ("Effusion", "Cardiomegaly", "COVID-19")
EVIL = """<script>alert("x")</script> <img data-evil src=x onerror="alert('y')"> 'single' & "double\""""


class BandGenerator:
    """Image i depends only on (prompt i, seed i). Finding k is a bright band at rows 4k..4k+3."""

    name = "bands"
    fingerprint = "0" * 64

    def __init__(self, size: int = 32, omission: float = 0.15, omission_hispanic_named: float = 0.5, covid: float = 0.3, noise: float = 0.05):
        self.size, self.omission, self.omission_hispanic_named, self.covid, self.noise = size, omission, omission_hispanic_named, covid, noise
        self.settings = {"size": size, "omission": omission, "path": EVIL}

    def generate(self, prompts, seeds):
        out = np.empty((len(prompts), self.size, self.size), np.float32)
        for j, (prompt, seed) in enumerate(zip(prompts, seeds)):
            rng = np.random.default_rng(seed)
            parsed = parse_prompt(prompt)
            img = 0.3 + self.noise * rng.standard_normal((self.size, self.size))
            miss = self.omission_hispanic_named if parsed.names_demographics and parsed.race == "Hispanic" else self.omission
            draws = rng.random(len(OUTPUTS) + 1)
            for k, output in enumerate(OUTPUTS):
                present = (output in parsed.findings and draws[k] > miss) or (output == "COVID-19" and draws[k] < self.covid)
                strength = 0.35 + 0.3 * draws[-1]
                if present:
                    img[4 * k : 4 * k + 4] += strength
            out[j] = 0.0 if seed % 31 == 0 else np.clip(img, 0, 1)  # some blacked-out images
        return out


class BandJudge:
    name = "band-reader"
    fingerprint = "1" * 64
    outputs = OUTPUTS

    def predict(self, images):
        bands = np.stack([images[:, 4 * k : 4 * k + 4].mean(axis=(1, 2)) for k in range(len(OUTPUTS))], axis=1)
        return 1 / (1 + np.exp(-(bands - 0.45) * 25))


@dataclass(frozen=True, order=True)
class EvilCell(Cell):
    """A cell whose prompt carries markup and quotes (as a user's prompt template might)."""

    @property
    def prompt(self) -> str:
        return "Effusion. " + EVIL


SPEC = {
    "findings": ["Effusion", "Cardiomegaly"],
    "samples_per_cell": 40,
    "thumbnails": 2,
    "subgroups": {"sex": ["female", "male"], "race": ["White", "Hispanic"]},
    "bias": [
        {"metric": ["tpr", "sr"], "statistic": "gap", "findings": ["Effusion"], "max": 0.1},
        {"metric": "tpr", "statistic": "deviation", "findings": ["Effusion"], "prompt": "named", "max": 0.15},
        {"metric": "tpr", "statistic": "prompt-effect", "findings": ["Effusion"], "by": ["race"], "max": 0.2},
    ],
    "validity": {"min_sensitivity": 0.7, "max_fpr": 0.1, "min_auroc": 0.8},
    "uncertainty": {"max_entropy": 0.3},
    "hallucination": {"max_rate": 0.05},
}
if "sampling" in AuditSpec.model_fields:  # every check spends its whole budget: exact, known numbers
    SPEC["sampling"] = "fixed"


def make_audit(tmp_path: Path, *, spec: dict | None = None, generator: BandGenerator | None = None, seed: int = 1, evil: bool = False, baseline: Path | None = None) -> AuditSession:
    loaded = LoadedSpec(AuditSpec.model_validate(spec or SPEC), None, "", "f" * 64)
    options = RunOptions(model="bands", seed=seed, report=tmp_path / "r.html", json=tmp_path / "r.json", csv=tmp_path / "r.csv")
    if baseline is not None:
        options.baseline = baseline  # type: ignore[attr-defined]
    audit = AuditSession(loaded, options)
    audit._pool = SamplePool(generator or BandGenerator(), BandJudge(), seed, thumbnails=loaded.spec.thumbnails, thumbnail_size=256)
    if evil:
        audit._pool.ensure([EvilCell("Effusion", (("sex", "female"),), False)], 3)  # a cell no check uses
        audit.errors["bias[boom]"] = "RuntimeError: " + EVIL
    for check in audit.checks:
        audit.evaluate(check)
    return audit


def render_standin_report(tmp_path: Path, *, evil: bool = False) -> tuple[Path, dict]:
    """Write the stand-in audit's reports into tmp_path; returns the HTML path and the JSON data."""
    audit = make_audit(tmp_path, evil=evil)
    audit.write_outputs()
    return tmp_path / "r.html", json.loads((tmp_path / "r.json").read_text())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    audit = make_audit(folder, evil=True)
    paths = audit.write_outputs()
    return audit, folder, paths


def test_files_written_and_counted(written):
    audit, folder, paths = written
    assert [p.name for p in paths] == ["r.json", "r.csv", "r.html"]
    data = json.loads((folder / "r.json").read_text())
    assert [i["check"] for i in data["items"]] == [c.nodename for c in audit.checks]
    assert data["samples"]["total"] == audit._pool.stats.generated == len((folder / "r.csv").read_text().splitlines()) - 1
    assert data["samples"]["invalid"] == data["invalid"]["count"] > 0
    assert sum(data["verdicts"].values()) == len(audit.checks) + 1  # + the error
    assert {"pass", "fail"} <= {i["verdict"] for i in data["items"]}


def test_json_matches_its_schema(written):
    jsonschema = pytest.importorskip("jsonschema")
    schema = report.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads((written[1] / "r.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    assert data["schema_version"] == report.SCHEMA_VERSION == schema["properties"]["schema_version"]["const"]
    # the schema is strict: an unknown key is an error, so code and schema cannot drift apart
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "surprise": 1}, schema, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "items": [{**data["items"][0], "surprise": 1}]}, schema, cls=jsonschema.Draft202012Validator)


def test_same_run_gives_byte_identical_json_and_csv_and_no_change_against_itself(written, tmp_path):
    _, folder, _ = written
    again = make_audit(tmp_path, evil=True)
    again.write_outputs()
    first = (folder / "r.json").read_bytes()
    assert (tmp_path / "r.json").read_bytes() == first and b"NaN" not in first
    assert (tmp_path / "r.csv").read_bytes() == (folder / "r.csv").read_bytes()
    same = report.build(again, baseline=folder / "r.json")
    assert same["baseline"]["counts"] == {"regressed": 0, "improved": 0, "unchanged": len(same["items"]), "new": 0}
    assert all(i["baseline"]["delta"] == 0 for i in same["items"])


def _positive(rows: pd.DataFrame, output: str) -> tuple[int, int]:
    return int((rows[f"p:{output}"] > 0.5).sum()), len(rows)


def _recompute(item: dict, csv: pd.DataFrame) -> float:
    """An item's estimate from the per-sample CSV alone, using the cells and n the JSON names."""
    rows = csv[csv["cell"].isin(item["cells"]) & (csv["i"] < item["samples_per_cell"]) & csv["valid"]]
    family, subject = item["family"], item["subject"]
    if family == "hallucination":
        count, n = _positive(rows, subject)
        return count / n
    if family == "uncertainty":
        return float(binary_entropy(rows[f"p:{subject}"].to_numpy()).mean())
    if family == "validity":
        asked = rows["finding"] == subject
        if item["check"].startswith("validity[sensitivity"):
            count, n = _positive(rows[asked], subject)
            return count / n
        if item["check"].startswith("validity[fpr"):
            count, n = _positive(rows[~asked], subject)
            return count / n
        pos, neg = rows[asked][f"p:{subject}"].to_numpy(), rows[~asked][f"p:{subject}"].to_numpy()
        return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size))
    bias = item["bias"]
    keys = [k for k in ("sex", "race") if k in bias["by"]]
    if bias["metric"] == "tpr":
        rows = rows[rows["finding"] == subject]
    rates = {}
    for values, group in rows[rows["named"]].groupby(keys + ["named"]):
        count, n = _positive(group, subject)
        rates[values] = count / n
    if bias["statistic"] == "gap":
        return max(rates.values()) - min(rates.values())
    if bias["statistic"] == "prompt-effect":  # each subgroup named vs the one plain prompt
        plain = _positive(rows[~rows["named"]], subject)
        return max(abs(v - plain[0] / plain[1]) for v in rates.values())
    ref = next(v for g, v in rates.items() if bias["reference"].split() == [g[1], g[0]])
    return max(abs(v - ref) for v in rates.values())


def _read_csv(path: Path) -> pd.DataFrame:
    csv = pd.read_csv(path)
    csv[["finding", "sex", "race"]] = csv[["finding", "sex", "race"]].fillna("")
    return csv


def test_csv_reproduces_every_estimate(written):
    _, folder, _ = written
    data = json.loads((folder / "r.json").read_text())
    csv = _read_csv(folder / "r.csv")
    assert list(csv.columns[:11]) == ["cell", "finding", "sex", "race", "age", "named", "i", "seed", "valid", "prompt", "seeded"]
    assert list(csv.columns[11:]) == [f"p:{o}" for o in OUTPUTS]
    assert len(data["items"]) == 13
    for item in data["items"]:
        assert _recompute(item, csv) == pytest.approx(item["estimate"], abs=1e-6), item["check"]
    # the heatmap too: every TPR/SR entry is its count over its n from the CSV
    valid = csv[csv["valid"]]
    for entry in data["rates"]:
        rows = valid[(valid["named"] == (entry["prompt"] == "named"))]
        for key in ("sex", "race"):
            rows = rows[rows[key] == entry["attributes"].get(key, "")]
        if entry["metric"] == "tpr":
            rows = rows[rows["finding"] == entry["finding"]]
        else:  # SR: the same number of samples from each of the subgroup's cells, as the items weigh them
            rows = rows[rows["i"] <= rows.groupby("cell")["i"].max().min()]
        assert _positive(rows, entry["finding"]) == (entry["count"], entry["n"])


@pytest.mark.skipif("sampling" not in AuditSpec.model_fields, reason="no sequential sampling in this version")
def test_csv_reproduces_estimates_of_a_sequential_audit(tmp_path):
    """Sequential items stop early: the JSON's samples_per_cell is what each one spent."""
    audit = make_audit(tmp_path, spec={**SPEC, "sampling": "sequential"})
    audit.write_outputs()
    data = json.loads((tmp_path / "r.json").read_text())
    csv = _read_csv(tmp_path / "r.csv")
    assert any(i["samples_per_cell"] < i.get("budget_per_cell", 0) for i in data["items"]), "some item stopped early"
    for item in data["items"]:
        assert _recompute(item, csv) == pytest.approx(item["estimate"], abs=1e-6), item["check"]
    html = (tmp_path / "r.html").read_text()
    assert "anytime-valid" in html and "the fixed-sample interval at this n" in html


def test_prompts_and_messages_are_inert_in_html(written):
    _, folder, _ = written
    html = (folder / "r.html").read_text()
    assert "<script>alert" not in html and "data-evil" not in html.replace("data-evil src=x", "")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img data-evil src=x onerror=&#34;alert(&#39;y&#39;)&#34;&gt;" in html
    assert html.count("<script>") == 1  # the report's own viewer script only


def test_html_is_self_contained(written):
    _, folder, _ = written
    html = (folder / "r.html").read_text()
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:|//|file:)""", html, re.IGNORECASE)
    assert "@import" not in html and "url(" not in html.replace("data:", "")
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.count("data:image/jpeg;base64,") >= 2 * 20  # galleries (2 per cell) + flagged images


def test_html_sections_link_and_show_n(written):
    _, folder, _ = written
    data = json.loads((folder / "r.json").read_text())
    html = (folder / "r.html").read_text()
    for item in data["items"]:
        assert f'href="#{item["id"]}"' in html and f'id="{item["id"]}"' in html
        assert f"n = {item['n']}" in html
    for section in ("summary", "heatmap", "bias", "validity", "uncertainty", "hallucination", "samples", "invalid", "run"):
        assert f'<section id="{section}"' in html
    # each plot has a table equivalent
    assert html.count('<svg class="ivplot"') == html.count('<details class="tabular">') - html.count('<svg class="hist"')
    assert "wall time" in html  # timings live in the HTML only


def test_heatmap_marks_the_subgroups_behind_failing_checks(written):
    _, folder, _ = written
    data = json.loads((folder / "r.json").read_text())
    failing = [i for i in data["items"] if i["family"] == "bias" and i["verdict"] == "fail"]
    assert failing, "the stand-in's named-prompt Hispanic omission must fail a bias check"
    for item in failing:
        assert item["marked"]
        flagged = [e for e in data["rates"] if item["id"] in e["flags"]]
        for label in item["marked"]:  # 'Hispanic' (by race) marks 'Hispanic female' and 'Hispanic male'
            assert any(set(label.split()) <= set(e["subgroup"].split()) for e in flagged), (item["check"], label)
        assert all(e["metric"] == item["bias"]["metric"] and e["finding"] == item["bias"]["finding"] for e in flagged)
    passing = {i["id"] for i in data["items"] if i["verdict"] == "pass"}
    assert not any(set(e["flags"]) & passing for e in data["rates"])
    html = (folder / "r.html").read_text()
    assert html.count('class="hcell marked fail"') == sum(1 for e in data["rates"] if any(f in {i["id"] for i in failing} for f in e["flags"]))


def test_hallucination_gallery_spreads_over_cells_and_scores(written):
    _, folder, _ = written
    data = json.loads((folder / "r.json").read_text())
    (entry,) = data["hallucination"]
    probs = [t["probability"] for t in entry["top"]]
    assert probs == sorted(probs, reverse=True) and probs and min(probs) > 0.5
    # spread: the most and the least confident flag of the item's images, and many cells
    item = next(i for i in data["items"] if i["family"] == "hallucination")
    csv = _read_csv(folder / "r.csv")
    rows = csv[csv["cell"].isin(item["cells"]) & (csv["i"] < item["samples_per_cell"]) & csv["valid"]]
    flagged = rows.loc[rows["p:COVID-19"] > 0.5, "p:COVID-19"]
    assert probs[0] == pytest.approx(flagged.max(), abs=1e-6) and probs[-1] == pytest.approx(flagged.min(), abs=1e-6)
    assert len(probs) == 8 and len({t["cell"] for t in entry["top"]}) >= 6
    assert all("COVID" not in t["prompt"] for t in entry["top"])
    item = next(i for i in data["items"] if i["family"] == "hallucination")
    assert entry["count"] / entry["n"] == pytest.approx(item["estimate"], abs=1e-6)


def test_mover_on_wilson_intervals_is_newcombe():
    a, b = (30, 100), (18, 90)
    la, ua = wilson(*a, 0.05)
    lb, ub = wilson(*b, 0.05)
    delta, low, high = compare.mover(a[0] / a[1], la, ua, b[0] / b[1], lb, ub)
    assert (low, high) == pytest.approx(newcombe(*a, *b, 0.05), abs=1e-9)
    assert delta == pytest.approx(30 / 100 - 18 / 90)
    assert compare.change("max", 0.01, 0.2) == "regressed" and compare.change("min", 0.01, 0.2) == "improved"
    assert compare.change("max", -0.2, -0.01) == "improved" and compare.change("max", -0.1, 0.1) == "unchanged"


def test_baseline_comparison(tmp_path):
    old = make_audit(tmp_path / "old", generator=BandGenerator(covid=0.02, omission_hispanic_named=0.15))
    old.write_outputs()
    base = tmp_path / "old" / "r.json"
    # a checkpoint that hallucinates more and omits more for Hispanic patients
    new = make_audit(tmp_path / "new", baseline=base, generator=BandGenerator(covid=0.3, omission_hispanic_named=0.5))
    new.write_outputs()
    data = json.loads((tmp_path / "new" / "r.json").read_text())
    by_check = {i["check"]: i["baseline"] for i in data["items"]}
    covid = by_check["hallucination[COVID-19]"]
    assert covid["status"] == "regressed" and covid["delta_low"] > 0 and covid["delta"] > 0.2
    assert by_check["bias[tpr-deviation-Effusion-sex*race-named]"]["status"] == "regressed"
    assert by_check["validity[auroc-Effusion]"]["status"] == "unchanged"  # untouched by the change
    assert data["baseline"]["same_spec"] and data["baseline"]["name"] == "r.json"
    html = (tmp_path / "new" / "r.html").read_text()
    assert "Δ baseline" in html and 'class="change regressed"' in html
    pytest.importorskip("jsonschema").validate(data, report.load_schema())


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read"),
        ("{not json", "not JSON"),
        ('{"schema_version": 99, "items": []}', "schema_version 99, expected 1"),
    ],
)
def test_unusable_baseline_is_one_line(tmp_path, content, message):
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(report.BaselineError, match=message):
        compare.load(path, report.SCHEMA_VERSION)


def test_report_of_a_1000_image_audit_stays_small(tmp_path):
    spec = {**SPEC, "findings": ["Effusion", "Cardiomegaly"], "samples_per_cell": 42, "thumbnails": 16,
            "subgroups": {"sex": ["female", "male"], "race": ["White", "Black", "Asian", "Hispanic"]}}
    audit = make_audit(tmp_path, spec=spec, generator=BandGenerator(size=256, noise=0.12))
    assert audit._pool.stats.generated >= 1000
    audit.write_outputs()
    size = (tmp_path / "r.html").stat().st_size
    assert size < 10_000_000
    html = (tmp_path / "r.html").read_text()
    assert "more not embedded" in html  # 16 noisy 256 px thumbnails per cell exceed the image budget


def test_empty_audit_still_writes(tmp_path):
    loaded = LoadedSpec(AuditSpec.model_validate(SPEC), None, "", "f" * 64)
    audit = AuditSession(loaded, RunOptions(model="bands", seed=0, report=tmp_path / "r.html", json=tmp_path / "r.json", csv=tmp_path / "r.csv"))
    audit.errors["bias[x]"] = "KeyboardInterrupt"
    audit.write_outputs()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["items"] == [] and data["samples"]["total"] == 0 and data["verdicts"]["error"] == 1
    assert "No samples were generated" in (tmp_path / "r.html").read_text()
    pytest.importorskip("jsonschema").validate(data, report.load_schema())


# ------------------------------------------------------------------ layout pieces (html.py, gallery.py)

from pytest_synthcxr.report import html as report_html  # noqa: E402
from pytest_synthcxr.report.gallery import spread_pick  # noqa: E402


@pytest.mark.parametrize(
    "values, intervals, expected",
    [
        ((0.03, 0.039, 0.025, 0.052), 3, (0.02, 0.06, 0.01)),  # entropy bound 0.03: a quarter of the strip, not 3% of 0..1
        ((0.1, 0.127, 0.085, 0.179), 3, (0.05, 0.2, 0.05)),  # FPR bound 0.1
        ((0.05, 0.401, 0.245, 0.572), 3, (0.0, 0.8, 0.2)),  # a rate far above a small bound reads from 0
        ((0.8, 1.0, 0.867, 1.0), 3, (0.7, 1.0, 0.1)),  # rates stay inside 0..1
        ((150.0, 40.0, 30.0, 60.0), 3, (0.0, 200.0, 50.0)),  # beyond 1 (a distance): no clamp
        ((-0.1, -0.02, -0.2, 0.05), 3, (-0.3, 0.1, 0.1)),  # signed differences
        ((0.05, None, None, None), 3, (0.0, 0.1, 0.025)),  # no estimate: the threshold alone
        ((0.1, float("nan"), float("-inf"), float("inf")), 3, (0.0, 0.2, 0.05)),
    ],
)
def test_strip_axis_is_scaled_to_its_quantity(values, intervals, expected):
    lo, hi, step = report_html.axis_range(list(values), intervals=intervals)
    assert (lo, hi) == pytest.approx(expected[:2]) and step == pytest.approx(expected[2])
    finite = [v for v in values if v is not None and np.isfinite(v)]
    assert lo <= min(finite) and max(finite) <= hi  # everything drawn lies on the axis
    assert round((hi - lo) / step) <= intervals + 1


def test_strip_places_a_small_threshold_well_inside_the_strip():
    item = {"threshold": 0.03, "direction": "max", "estimate": 0.039, "low": 0.025, "high": 0.052}
    s = report_html.strip(item)
    span = s["width"] - s["left"] - report_html.PLOT_RIGHT
    assert (s["threshold"] - s["left"]) / span == pytest.approx(0.25, abs=0.01)  # 0.03 on 0.02..0.06
    assert [t["label"] for t in s["ticks"]] == ["0.02", "0.03", "0.04", "0.05", "0.06"]
    assert s["forbidden"] == (s["threshold"], s["ticks"][-1]["x"])  # max bound: forbidden above


def test_plot_label_column_grows_with_long_labels():
    rows = [{"label": "White female", "rate": 0.5, "low": 0.4, "high": 0.6}]
    short = report_html.interval_plot(rows)
    assert short["left"] == report_html.PLOT_LEFT and short["width"] == report_html.PLOT_WIDTH
    label = "60-year-old Black or African American female"
    wide = report_html.interval_plot([*rows, {**rows[0], "label": label}])
    assert wide["left"] >= 16 + report_html.LABEL_CHAR_PX * len(label)
    assert wide["width"] - wide["left"] == short["width"] - short["left"]  # the plot area keeps its size


@pytest.mark.parametrize(
    "policy, expected",
    [("fail", ["b-fail", "c-inc", "x-error", "a-pass"]), ("warn", ["b-fail", "x-error", "a-pass", "c-inc"])],
)
def test_checks_table_lists_blocking_items_first_in_spec_order(policy, expected):
    items = [
        {"check": "a-pass", "verdict": "pass", "family": "validity"},
        {"check": "b-fail", "verdict": "fail", "family": "bias"},
        {"check": "c-inc", "verdict": "inconclusive", "family": "uncertainty"},
    ]
    data = {"spec": {"inconclusive": policy}, "items": items, "errors": {"x-error": "RuntimeError: boom"}}
    rows = report_html.item_rows(data)
    assert [r["item"]["check"] if r["item"] else r["error"][0] for r in rows] == expected
    assert [r["blocks"] for r in rows] == [True] * (3 if policy == "fail" else 2) + [False] * (1 if policy == "fail" else 2)
    assert report_html.filters(rows)["verdict"] == [("fail", 1), ("inconclusive", 1), ("error", 1), ("pass", 1)]


def test_spread_pick_covers_cells_and_the_score_range():
    # a saturated judge: 30 images of cell a at 1.0, then b and c, and one weak flag in a
    scores = [1.0] * 30 + [0.999] * 5 + [0.98] * 5 + [0.6]
    cells = ["a"] * 30 + ["b"] * 5 + ["c"] * 5 + ["a"]
    picked = spread_pick(scores, cells, 4)
    assert [scores[i] for i in picked] == sorted((scores[i] for i in picked), reverse=True)
    assert picked[0] == 0 and picked[-1] == 40  # the most and the least confident flag
    assert {cells[i] for i in picked} == {"a", "b", "c"}  # every cell, though the top 4 are all a
    assert [scores[i] for i in sorted(range(len(scores)), key=lambda i: -scores[i])[:4]] == [1.0] * 4  # what "top 4" showed
    assert spread_pick(scores, cells, 4) == picked  # deterministic
    assert spread_pick([0.7, 0.9], ["a", "b"], 8) == [1, 0] and spread_pick([], [], 8) == []


def test_probabilities_keep_the_digits_that_tell_them_from_1():
    assert [report_html.prob(p) for p in (0.5, 0.99964, 0.999999, 1.0, None)] == ["0.500", "0.9996", "0.999999", "1.000", "–"]
