"""The reader study end to end on the phantom world: an audit fills the cache, the study samples
it, simulated readers report what the phantom truly drew (3% reading error), and a second audit
with verdict = "reader" decides on the prediction-powered rate, which covers the true rate."""

from __future__ import annotations

import json

import numpy as np
import pytest

SPEC = """
model = "phantom-biased"
seed = 3
findings = ["Effusion"]
sampling = "fixed"
cache_images = "always"
[subgroups]
sex = ["female", "male"]
race = ["White", "Hispanic"]
[[validity]]
min_sensitivity = 0.3
samples = 60
"""


def test_phantom_audit_corrected_by_simulated_readers(pytester, tmp_path):
    pytest.importorskip("fastapi")
    from pytest_synthcxr.models.generators.phantom import PhantomGenerator
    from pytest_synthcxr.reader.__main__ import build_parser, prepare
    from pytest_synthcxr.sampling.cells import derive_seed

    cache = tmp_path / "cache"
    pytester.makefile(".toml", synthcxr=SPEC)
    args = ["-p", "no:randomly", "-p", "no:cacheprovider", "synthcxr.toml", f"--synthcxr-cache-dir={cache}"]
    first = pytester.runpytest(*args, "--synthcxr-json=judge.json")
    first.assert_outcomes(passed=1)

    study, store = prepare(build_parser().parse_args(["--spec", str(pytester.path / "synthcxr.toml"), "--cache-dir", str(cache), "--per-cell", "15"]))
    store.register(study.findings)
    generator = PhantomGenerator("phantom-biased")
    rng = np.random.default_rng(0)
    for image in study.findings:
        drawn = generator.plan(image.prompt, image.seed)[1]
        for reader in ("r1", "r2"):
            answers = {}
            for q in study.questions:
                truth = q in drawn.findings
                answers[q] = "present" if truth != (rng.random() < 0.03) else "absent"
            store.answer(reader, image.image_sha, "findings", {**answers, "usable": "yes"})

    # the truth: share of the item's images (asked for Effusion, samples 0..59 of each subgroup) that show it
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.spec.schema import load_spec

    (item,) = build_checks(load_spec(pytester.path / "synthcxr.toml").spec)
    asked = [c for c in item.population if c.finding == "Effusion"]
    drawn = [("Effusion" in generator.plan(c.prompt, derive_seed(3, c.seed_key, i))[1].findings) for c in asked for i in range(60)]
    true_rate = float(np.mean(drawn))

    pytester.makefile(".toml", synthcxr=SPEC.replace("samples = 60", "samples = 60\nverdict = \"reader\"") + f'[reader]\nlabels = "{store.path.as_posix()}"\n')
    second = pytester.runpytest(*args, "--synthcxr-json=reader.json", "--synthcxr-report=reader.html")
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["0 images generated*"])  # everything came from the cache
    judged = json.loads((pytester.path / "judge.json").read_text())["items"][0]
    corrected = json.loads((pytester.path / "reader.json").read_text())["items"][0]
    assert corrected["check"] == judged["check"] == "validity[sensitivity-Effusion]"
    assert corrected["stats"]["reader_labelled"] == 4 * 15
    assert corrected["stats"]["judge_only"] == pytest.approx(judged["estimate"])
    assert corrected["low"] <= true_rate <= corrected["high"]
    print(f"true {true_rate:.3f}; judge alone {judged['estimate']:.3f} [{judged['low']:.3f}, {judged['high']:.3f}]; "
          f"reader-corrected {corrected['estimate']:.3f} [{corrected['low']:.3f}, {corrected['high']:.3f}]")
    html = (pytester.path / "reader.html").read_text()
    assert "Reader study" in html and "reader-corrected" in html and 'href="#reader"' in html
    assert 'data-output="Effusion"' in html and html.count('data-subgroup="') == 4  # agreement per subgroup
    assert 'class="gallery disagreed"' in html and html.count("asked for Effusion, seed") + html.count("asked for normal study, seed") >= 1
    # the JSON carries the section's numbers (schema-valid), the same the HTML shows
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_synthcxr.report.schema import load_schema

    data = json.loads((pytester.path / "reader.json").read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(data)
    reader = data["reader"]
    assert reader["error"] is None and reader["labels"] > 0 and reader["readers"]
    (entry,) = reader["items"]
    assert entry["check"] == corrected["check"] and entry["labelled"] == 4 * 15
    assert entry["corrected"] == [corrected["estimate"], corrected["low"], corrected["high"]]
    assert entry["judge_only"][0] == pytest.approx(judged["estimate"])
    (agreement,) = reader["agreement"]
    assert agreement["output"] == "Effusion" and len(agreement["rows"]) == 4
    assert sum(r["n"] for r in agreement["rows"]) == sum(r["tp"] + r["fn"] + r["tn"] + r["fp"] for r in agreement["rows"]) > 0
    assert "reader" not in json.loads((pytester.path / "judge.json").read_text())  # no [reader]: no key
    # the same labels on another model's images (same cells and seeds): not a verdict, one line
    third = pytester.runpytest(*args, "--synthcxr-model=phantom-fair", "--synthcxr-json=other.json")
    third.assert_outcomes(failed=1)
    text = third.stdout.str()
    assert "is not the image model 'phantom-fair' draws there" in text and "run the reader study on this model's cache" in text
    assert "Traceback" not in text and "raise " not in text
    other = json.loads((pytester.path / "other.json").read_text())
    assert not other["items"] and "validity[sensitivity-Effusion]" in other["errors"]
