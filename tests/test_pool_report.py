"""Sample pool and report on a tiny stand-in generator and judge (no phantom, no torch)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pytest_synthcxr.cells import Cell
from pytest_synthcxr.pool import SamplePool
from pytest_synthcxr.session import AuditSession, RunOptions
from pytest_synthcxr.spec import AuditSpec, LoadedSpec


class NoiseGenerator:
    """Image i depends only on (prompt i, seed i); seed % 7 == 0 gives a blacked-out image."""

    name = "noise"
    fingerprint = "0" * 64
    settings = {"size": 16}

    def generate(self, prompts, seeds):
        out = []
        for prompt, seed in zip(prompts, seeds):
            img = np.random.default_rng(seed).random((16, 16), dtype=np.float32)
            out.append(np.zeros((16, 16), np.float32) if seed % 7 == 0 else img)
        return np.stack(out)


class MeanJudge:
    name = "mean"
    fingerprint = "1" * 64
    outputs = ("Effusion", "Cardiomegaly", "COVID-19")

    def predict(self, images):
        m = images.reshape(len(images), -1).mean(axis=1)
        return np.stack([m, 1 - m, (m * 10) % 1], axis=1).astype(float)


CELLS = [Cell(f, (("sex", s),), n) for f in ("Effusion", None) for s in ("female", "male") for n in (False, True)]


def test_pool_is_independent_of_batch_size_and_request_order():
    a = SamplePool(NoiseGenerator(), MeanJudge(), 3, batch_size=5)
    b = SamplePool(NoiseGenerator(), MeanJudge(), 3, batch_size=64)
    a.ensure(CELLS[:3], 4)  # grow in a different order and in two steps
    a.ensure(list(reversed(CELLS)), 9)
    ta, tb = a.table(CELLS, 9), b.table(CELLS, 9)
    assert ta.equals(tb)
    assert a.stats.generated == b.stats.generated == 9 * len(CELLS)
    assert b.table(CELLS, 9).equals(tb) and b.stats.generated == 9 * len(CELLS)  # nothing regenerated


def test_invalid_images_are_counted_not_scored():
    pool = SamplePool(NoiseGenerator(), MeanJudge(), 0, batch_size=8)
    table = pool.table(CELLS, 30)
    invalid = table[~table["valid"]]
    assert len(invalid) == pool.stats.invalid > 0
    assert (invalid["seed"] % 7 == 0).all()
    assert invalid["p:Effusion"].isna().all()
    assert sum(pool.invalid_count(c) for c in CELLS) == pool.stats.invalid


def _audit(tmp_path: Path) -> AuditSession:
    spec = AuditSpec.model_validate(
        {"findings": ["Effusion"], "samples_per_cell": 20, "subgroups": {"race": ["White", "Hispanic"]},
         "bias": [{"statistic": "gap", "max": 0.5}], "hallucination": {"max_rate": 0.5}}
    )
    loaded = LoadedSpec(spec, None, "", "f" * 64)
    audit = AuditSession(loaded, RunOptions(model="noise", seed=1, report=tmp_path / "r.html", json=tmp_path / "r.json", csv=tmp_path / "r.csv"))
    audit._pool = SamplePool(NoiseGenerator(), MeanJudge(), 1, thumbnails=1)
    audit._pool.ensure([Cell("Effusion", (("race", "White"),), True)], 1)
    return audit


def test_report_files(tmp_path):
    audit = _audit(tmp_path)
    for check in audit.checks:
        audit.evaluate(check)
    audit.errors["bias[boom]"] = "RuntimeError: <script>alert(1)</script>"
    written = audit.write_outputs()
    assert [p.name for p in written] == ["r.json", "r.csv", "r.html"]
    data = json.loads((tmp_path / "r.json").read_text())
    assert [i["check"] for i in data["items"]] == [c.nodename for c in audit.checks]
    assert data["samples"]["generated"] == audit._pool.stats.generated
    assert sum(v for k, v in data["verdicts"].items()) == len(audit.checks) + 1
    html = (tmp_path / "r.html").read_text()
    # self-contained: no external resources; user text escaped
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<svg") == sum(1 for i in data["items"] if i["groups"])
    assert "data:image/png;base64," in html
    csv = (tmp_path / "r.csv").read_text().splitlines()
    assert csv[0].startswith("cell,finding,sex,race,named,i,seed,valid,p:Effusion")
    assert len(csv) == 1 + audit._pool.stats.generated


def test_json_is_deterministic(tmp_path):
    runs = []
    for k in range(2):
        audit = _audit(tmp_path / str(k))
        for check in audit.checks:
            audit.evaluate(check)
        audit.write_outputs()
        runs.append((tmp_path / str(k) / "r.json").read_bytes())
    assert runs[0] == runs[1]
