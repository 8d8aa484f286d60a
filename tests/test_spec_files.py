"""Audit spec files are pytest test files: ids, pasted ids, --lf, several audits, progress lines,
the plan's cost estimate and the xdist summary, as users run them (pytester, the phantom model)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from pytest_synthcxr.plugin.progress import Progress, describe

TINY = """
model = "phantom-biased"
seed = 0
samples_per_cell = 24
findings = ["Effusion"]
thumbnails = 0

[subgroups]
sex = ["female"]
race = ["White"]

[uncertainty]
max_entropy = 0.99

[hallucination]
max_rate = 0.05
"""
UNCERTAINTY = "uncertainty[Effusion]"
HALLUCINATION = "hallucination[COVID-19]"


def _esc(text: str) -> str:
    """fnmatch pattern matching text literally (brackets escaped)."""
    return "".join("[[]" if c == "[" else "[]]" if c == "]" else c for c in text)


def _run(pytester, *args):
    return pytester.runpytest("-p", "no:randomly", "--synthcxr-no-cache", *args)


def test_a_spec_file_is_collected_under_its_own_path(pytester):
    pytester.mkdir("audits")
    (pytester.path / "audits" / "roentgen.synthcxr.toml").write_text(TINY)
    result = _run(pytester, "audits", "--collect-only", "-q")
    result.stdout.fnmatch_lines([f"audits/roentgen.synthcxr.toml::{_esc(UNCERTAINTY)}", "*2 tests collected*"])


def test_a_pasted_failed_id_reruns_exactly_that_item(pytester):
    pytester.makefile(".synthcxr.toml", audit=TINY)
    first = _run(pytester, "audit.synthcxr.toml")
    first.assert_outcomes(passed=1, failed=1)  # phantom-biased hallucinates COVID-19
    failed = [line.split()[1] for line in first.stdout.lines if line.startswith("FAILED ")]
    assert failed == [f"audit.synthcxr.toml::{HALLUCINATION}"]
    again = _run(pytester, failed[0])
    again.assert_outcomes(failed=1)


def test_a_pasted_id_of_the_builtin_spec_audit_runs_only_that_item(pytester):
    pytester.makepyfile(test_unit="def test_ok():\n    pass\n")
    result = _run(pytester, "--synthcxr-model=phantom", f"synthcxr::{HALLUCINATION}", "--collect-only", "-q")
    result.stdout.fnmatch_lines([f"synthcxr::{_esc(HALLUCINATION)}"])
    assert "test_unit.py" not in result.stdout.str()
    assert sum(1 for line in result.stdout.lines if "::" in line) == 1
    missing = _run(pytester, "--synthcxr-model=phantom", "synthcxr::bias[nothing-like-this]", "--collect-only")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines([_esc("ERROR: synthcxr: no audit item 'synthcxr::bias[nothing-like-this]'") + "*"])


def test_last_failed_reruns_only_the_failed_audit_item(pytester):
    pytester.makefile(".synthcxr.toml", audit=TINY)
    pytester.makepyfile(test_unit="def test_ok():\n    pass\n")
    first = pytester.runpytest("-p", "no:randomly", "audit.synthcxr.toml", "test_unit.py", "--synthcxr-no-cache")
    first.assert_outcomes(passed=2, failed=1)
    rerun = pytester.runpytest("-p", "no:randomly", "audit.synthcxr.toml", "test_unit.py", "--synthcxr-no-cache", "--lf", "-v")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines([f"*audit.synthcxr.toml::{_esc(HALLUCINATION)} FAILED*"])


def test_a_file_without_a_model_is_one_collection_error(pytester):
    pytester.makefile(".synthcxr.toml", audit=TINY.replace('model = "phantom-biased"\n', ""))
    result = _run(pytester, "audit.synthcxr.toml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*synthcxr: *audit.synthcxr.toml: no model to audit*--synthcxr-model*"])
    assert "Traceback" not in result.stdout.str()


def test_several_audit_files_write_one_report_each(pytester):
    pytester.makefile(".synthcxr.toml", a=TINY, b=TINY.replace("phantom-biased", "phantom"))
    clash = _run(pytester, "a.synthcxr.toml", "b.synthcxr.toml", "--synthcxr-json=out/audit.json")
    assert clash.ret == pytest.ExitCode.INTERRUPTED
    clash.stdout.fnmatch_lines(["*several audit files in one run would all write --synthcxr-json*{spec}*"])
    result = _run(pytester, "a.synthcxr.toml", "b.synthcxr.toml", "--synthcxr-json=out/{spec}.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # phantom-biased fails its hallucination item
    a = json.loads((pytester.path / "out" / "a.json").read_text())
    b = json.loads((pytester.path / "out" / "b.json").read_text())
    assert a["model"]["name"] == "phantom-biased" and b["model"]["name"] == "phantom"
    result.stdout.fnmatch_lines(["*synthcxr audit: *a.synthcxr.toml*", "*synthcxr audit: *b.synthcxr.toml*"])


def test_the_sample_cache_stays_on_without_pytests_cache_provider(pytester):
    pytester.makefile(".synthcxr.toml", audit=TINY)
    for _ in range(2):
        result = pytester.runpytest("-p", "no:cacheprovider", "audit.synthcxr.toml")
    result.stdout.fnmatch_lines(["sample cache: * hits, 0 misses*"])
    assert "0 hits" not in result.stdout.str()


def test_the_xdist_summary_is_complete(pytester):
    pytest.importorskip("xdist")
    pytester.makefile(".synthcxr.toml", audit=TINY)
    result = pytester.runpytest("-p", "no:randomly", "-n", "2", "audit.synthcxr.toml", "--synthcxr-cache-dir=cache")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*synthcxr audit: *audit.synthcxr.toml*",
            "1 pass, 1 fail, 0 inconclusive: release blocked by 1 item(s)",
            "* images generated (* invalid), generation *s, judging *s*",
            "sample cache: * hits, * misses, * samples, * MiB in *cache",
        ]
    )


def test_the_plan_estimates_time_from_a_given_or_measured_rate(pytester):
    pytester.makefile(".synthcxr.toml", audit=TINY)
    given = _run(pytester, "audit.synthcxr.toml", "--synthcxr-plan", "--synthcxr-plan-rate=2")
    assert given.ret == pytest.ExitCode.OK
    out = given.stdout.str()
    total = int(out.split("at most ")[1].split(" distinct images")[0])
    given.stdout.fnmatch_lines(["rate: 2.00 images/s generated and judged (from --synthcxr-plan-rate*", f"budget: at most {total} images, about {total / 2:.0f} s"])
    measured = _run(pytester, "audit.synthcxr.toml", "--synthcxr-plan")
    measured.stdout.fnmatch_lines(["rate: * images/s generated and judged (measured now on 4 images*", "power-based size: about * images*"])
    bad = _run(pytester, "audit.synthcxr.toml", "--synthcxr-plan", "--synthcxr-plan-rate=0")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR


class _Reporter:
    def __init__(self, tty: bool) -> None:
        self.isatty = tty
        self.lines: list[str] = []
        self.rewrites: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)

    def rewrite(self, line: str, erase: bool = False) -> None:
        self.rewrites.append(line)

    def write(self, text: str) -> None:
        self.lines.append(text)

    def ensure_newline(self) -> None:
        pass


def _drive(reporter: _Reporter, interval: float) -> None:
    now = [0.0]
    progress = Progress(lambda: reporter, interval=interval, clock=lambda: now[0])
    for done in range(10, 101, 10):  # a round of 100 images, 10 per second
        progress(done, 100)
        now[0] += 1.0


def test_progress_without_a_terminal_writes_a_line_every_interval():
    reporter = _Reporter(tty=False)
    _drive(reporter, interval=3.0)
    assert reporter.lines == [describe(40, 100, 10.0), describe(70, 100, 10.0)]
    assert "ETA 6s" in reporter.lines[0] and not reporter.rewrites


def test_progress_on_a_terminal_rewrites_one_live_line():
    reporter = _Reporter(tty=True)
    _drive(reporter, interval=30.0)
    assert len(reporter.rewrites) == 9 and reporter.rewrites[-1].startswith("synthcxr: 100/100")
    assert reporter.lines == ["\n"]  # the finished line is ended once


def test_progress_reaches_a_pseudo_terminal_and_a_pipe(pytester):
    pytester.makefile(".synthcxr.toml", audit=TINY.replace("samples_per_cell = 24", "samples_per_cell = 32\nbatch_size = 4"))
    cmd = [sys.executable, "-m", "pytest", "-p", "no:randomly", "audit.synthcxr.toml", "--synthcxr-no-cache", "--synthcxr-progress-interval=0.001"]
    piped = subprocess.run(cmd, cwd=pytester.path, capture_output=True, text=True, timeout=300)
    assert "images generated and judged (" in piped.stdout and "images/s" in piped.stdout
    assert "\r" not in piped.stdout
    main, child = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=pytester.path, stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(main)
    text = b"".join(chunks).decode(errors="replace")
    assert "images generated and judged (" in text and "\r" in text  # rewritten in place


def test_the_demo_audit_file_is_the_builtin_spec_on_phantom_biased():
    from pathlib import Path

    from pytest_synthcxr.spec.schema import default_spec_text

    demo = (Path(__file__).parent.parent / "audits" / "demo.synthcxr.toml").read_text(encoding="utf-8")
    body = demo.split('model = "phantom-biased"\n\n', 1)
    assert len(body) == 2 and body[1] == default_spec_text()


def test_a_model_given_with_an_audit_file_overrides_its_model_and_adds_no_other_audit(pytester):
    pytester.makefile(".synthcxr.toml", audit=TINY)
    result = _run(pytester, "audit.synthcxr.toml", "--synthcxr-model=phantom", "--synthcxr-json=out.json", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*2 tests collected*"])
    assert "synthcxr::" not in result.stdout.str()
    result.stdout.fnmatch_lines(["synthcxr: *audit.synthcxr.toml: model phantom, seed 0, 2 checks"])
