"""The Reader study section's tables, on hand-made labels (no audit)."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_synthcxr.checks.reader import ReaderLabel, reader_truth
from pytest_synthcxr.report.reader_view import versus_tables


def _answers(reader: str, truth: list[bool], said: list[bool], confidence: list[int]) -> list[ReaderLabel]:
    return [
        ReaderLabel(reader, f"{i:064x}", "", None, "real-synthetic", "synthetic", "synthetic" if s else "real", c, "generated" if t else "reference")
        for i, (t, s, c) in enumerate(zip(truth, said, confidence))
    ]


def test_versus_tables_per_reader_pooled_and_kappas():
    truth = [True] * 10 + [False] * 10
    perfect = _answers("ann", truth, truth, [5] * 20)
    coin = _answers("ben", truth, [i % 2 == 0 for i in range(20)], [1] * 20)
    also = _answers("cat", truth, truth[:18] + [True, True], [4] * 20)
    tables = versus_tables(perfect + coin + also, 0.05)
    rows = {r["reader"]: r for r in tables["rows"]}
    assert set(rows) == {"ann", "ben", "cat", "pooled"}
    assert rows["ann"]["auroc"][0] == 1.0 and rows["ann"]["accuracy"][0] == 1.0
    assert rows["ben"]["auroc"][0] == pytest.approx(0.5) and rows["ben"]["accuracy"][0] == pytest.approx(0.5)
    assert rows["cat"]["accuracy"][0] == pytest.approx(0.9)
    assert rows["pooled"]["n"] == 60 and rows["pooled"]["synthetic"] == 30
    pairs = {p["readers"]: p for p in tables["pairs"]}
    assert pairs["ann / ben"]["kappa"][0] == pytest.approx(0.0) and pairs["ann / cat"]["kappa"][0] == pytest.approx(0.8)
    assert tables["fleiss"]["n"] == 20 and -1 <= tables["fleiss"]["kappa"] <= 1
    assert versus_tables([], 0.05) is None


def test_reader_truth_averages_readers_and_unusable_means_absent():
    sha = "a" * 64
    labels = [
        ReaderLabel("r1", sha, "c", 5, "findings", "Effusion", "present"),
        ReaderLabel("r2", sha, "c", 5, "findings", "Effusion", "absent"),
        ReaderLabel("r3", sha, "c", 5, "findings", "Effusion", "unsure"),  # left out
        ReaderLabel("r4", sha, "c", 5, "findings", "usable", "no"),  # not usable: does not show it
        ReaderLabel("r1", "b" * 64, "c", 6, "findings", "Effusion", "unsure"),
        ReaderLabel("r1", "c" * 64, "c", 7, "real-synthetic", "synthetic", "real", 3),
    ]
    truth = reader_truth(labels, "Effusion")
    assert truth == {("c", 5): (pytest.approx(1 / 3), sha)}
    assert np.isclose(truth[("c", 5)][0], 1 / 3)
