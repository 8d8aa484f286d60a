"""The HTML report in a real browser: headless Chromium driven over the DevTools protocol.

Chromium is started with --remote-debugging-pipe (JSON messages on file descriptors 3 and 4),
so no websocket client or Selenium is needed. The first test loads a rendered report from a file
URL and asserts: no console errors or exceptions, no network request other than the page
itself and inline data: images, every section present, the image viewer opens, prompts with
markup stay inert; it saves a full-page screenshot as a test artifact. The layout test runs a
small phantom audit with pytest itself and checks, at 1000 and 1400 px wide (full-page
screenshots saved under $SYNTHCXR_TEST_ARTIFACTS): no horizontal overflow, the banner's count
equals pytest's failed items, blocking items first, the filter hides and shows rows, no seed
wraps, no label clipped.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from test_report import render_standin_report

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
)
#: where screenshots go (CI uploads this folder); default: the test's tmp_path
ARTIFACTS_ENV = "SYNTHCXR_TEST_ARTIFACTS"


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, binary: str, profile: Path, timeout: float = 30.0) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: commands in on fd 3, replies and events out on fd 4
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4 first
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=wire,
            close_fds=False,  # fds 3 and 4 are made after the usual close; Python's own fds are not inheritable
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._next = 0
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("no message from Chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, width: int = 1280, height: int = 900) -> None:
        self.events.clear()  # an earlier page's load event must not count as this one's
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def problems(self) -> list[str]:
        """Console errors/warnings, uncaught exceptions and log errors (CSP violations among them)."""
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params.get('args', [])]}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
        except Exception:  # noqa: BLE001 - it may already be gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.stderr:
            self.proc.stderr.close()


@pytest.fixture
def browser(tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip("Chromium not found on PATH (Debian: apt-get install chromium); .ci/run installs it, so CI runs this test")
    with tempfile.TemporaryDirectory(prefix="synthcxr-chromium-") as profile:
        tools = DevTools(binary, Path(profile))
        try:
            yield tools
        finally:
            tools.close()


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get(ARTIFACTS_ENV, tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


SECTIONS = ("top", "summary", "heatmap", "bias", "validity", "uncertainty", "hallucination", "samples", "invalid", "run")


def test_report_in_headless_chromium(browser, tmp_path):
    html, data = render_standin_report(tmp_path, evil=True)
    browser.open(html.as_uri())

    assert browser.problems() == []
    page = html.as_uri()
    others = [u for u in browser.requests() if u != page and not u.startswith(("data:", "about:"))]
    assert others == [], "the report must not request anything"

    present = browser.evaluate(f"{list(SECTIONS)!r}.filter(id => document.getElementById(id) !== null)")
    assert present == list(SECTIONS)
    # every item row links to an element that exists, and every item has its section
    links = browser.evaluate("Array.from(document.querySelectorAll('#items tbody a')).map(a => a.getAttribute('href'))")
    assert len(links) == len(data["items"])
    assert browser.evaluate(f"{links!r}.every(h => document.querySelector(h) !== null)")
    # plots drawn, images decoded
    assert browser.evaluate("document.querySelectorAll('svg.ivplot').length") >= 2
    decoded = browser.evaluate(
        "Promise.all(Array.from(document.images).filter(i => i.src.startsWith('data:'))"
        ".map(i => { i.loading = 'eager'; return i.decode().then(() => i.naturalWidth > 0, () => false); }))"
    )
    assert decoded and all(decoded), "every embedded image decodes"
    # the user-controlled prompt stayed text: no injected element, no alert, the text itself shown
    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert browser.evaluate("document.querySelector('[data-evil]') === null")
    assert browser.evaluate("document.body.innerText.includes('<script>alert(\"x\")</script>')")
    # the image viewer opens on click
    browser.evaluate("document.querySelector('img.zoom').click()")
    assert browser.evaluate("document.getElementById('viewer').open") is True
    shot = browser.screenshot(_artifacts(tmp_path) / "report-viewer.png", full_page=False)
    browser.evaluate("document.getElementById('viewer').close()")
    full = browser.screenshot(_artifacts(tmp_path) / "report.png")
    assert shot.stat().st_size > 10_000 and full.stat().st_size > 50_000
    assert browser.problems() == []

    # the harness itself notices what it guards against: a console error and a request leaving the page
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/leak.png"><script>console.error("boom")</script>')
    browser.events.clear()
    browser.send("Page.navigate", {"url": bad.as_uri()})
    browser.wait_for("Page.loadEventFired")
    assert any("boom" in p for p in browser.problems())
    assert "http://127.0.0.1:9/leak.png" in browser.requests()


# ------------------------------------------------------------------ layout at 1000 and 1400 px

#: a small audit that blocks (phantom-biased hallucinates COVID-19; entropy over its bound), with
#: inconclusive items that block under the default policy and items that pass
LAYOUT_SPEC = """
seed = 0
samples_per_cell = 16
findings = ["Effusion"]
thumbnails = 1

[subgroups]
sex = ["female", "male"]
race = ["White", "Hispanic"]

[[bias]]
metric = "tpr"
statistic = "gap"
prompt = "named"
max = 0.2

[validity]
min_sensitivity = 0.1
max_fpr = 0.1

[uncertainty]
max_entropy = 0.03

[hallucination]
max_rate = 0.05
"""

#: the page's layout facts, measured by the browser (what a reader would see, not the HTML text)
LAYOUT_FACTS = r"""(() => {
  const rows = Array.from(document.querySelectorAll('#items tr.item'));
  const clippedSvg = [];
  for (const svg of document.querySelectorAll('svg')) {
    const box = svg.viewBox.baseVal;
    const width = box && box.width ? box.width : svg.width.baseVal.value;
    for (const t of svg.querySelectorAll('text')) {
      const b = t.getBBox();
      if (b.width > 0 && (b.x < -0.5 || b.x + b.width > width + 0.5)) clippedSvg.push(t.textContent + ' [' + b.x.toFixed(1) + ', ' + (b.x + b.width).toFixed(1) + '] in 0..' + width);
    }
  }
  const clippedHtml = [];
  for (const el of document.querySelectorAll('th, td, figcaption, label, .verdict, h1, h2, h3, h4, .banner')) {
    if (el.closest('[hidden], details:not([open])') || el.clientWidth === 0) continue;
    if (el.scrollWidth > el.clientWidth + 1) clippedHtml.push(el.tagName + ': ' + el.textContent.trim().slice(0, 60));
  }
  const scrolled = Array.from(document.querySelectorAll('.scroll, .heatmap-box'))
    .filter(el => el.scrollWidth > el.clientWidth + 1).map(el => el.firstElementChild && el.firstElementChild.id);
  const seeds = Array.from(document.querySelectorAll('.seed')).filter(el => !el.closest('details:not([open])'));
  const header = document.querySelector('#items thead tr').lastElementChild.getBoundingClientRect();
  return {
    pageWidth: document.documentElement.scrollWidth, viewWidth: window.innerWidth,
    nColumnRight: header.right,
    scrolled: scrolled,
    banner: document.getElementById('blocking-count').textContent.trim(),
    blocks: rows.map(r => r.dataset.blocks), checks: rows.map(r => r.dataset.check || ''),
    seeds: seeds.length, wrappedSeeds: seeds.filter(el => el.getClientRects().length !== 1).map(el => el.textContent),
    clippedSvg: clippedSvg, clippedHtml: clippedHtml,
  };
})()"""

#: lazy images below the fold load now (a full-page screenshot shows them)
EAGER_IMAGES = (
    "Promise.all(Array.from(document.images).filter(i => i.src.startsWith('data:'))"
    ".map(i => { i.loading = 'eager'; return i.decode().then(() => i.naturalWidth > 0, () => false); })).then(all => all.every(x => x))"
)
VISIBLE_ROWS = "Array.from(document.querySelectorAll('#items tr.item')).filter(r => r.offsetParent !== null).map(r => [r.dataset.verdict, r.dataset.family])"


def _click_filter(browser: DevTools, name: str, value: str) -> None:
    browser.evaluate(f"document.querySelector('#filters input[name={name}][value=\"{value}\"]').click()")


def _layout_run(pytester) -> tuple[Path, dict, int]:
    pytester.makefile(".toml", synthcxr=LAYOUT_SPEC)
    result = pytester.runpytest("-p", "no:cacheprovider", "--synthcxr-model=phantom-biased", "--synthcxr-spec=synthcxr.toml", "--synthcxr-report=out/r.html", "--synthcxr-json=out/r.json")
    outcomes = result.parseoutcomes()
    failed = outcomes.get("failed", 0) + outcomes.get("errors", 0) + outcomes.get("error", 0)
    return pytester.path / "out" / "r.html", json.loads((pytester.path / "out" / "r.json").read_text()), failed


def test_report_layout_answers_first_at_1000_and_1400_px(browser, pytester, tmp_path):
    html, data, failed = _layout_run(pytester)
    verdicts = [i["verdict"] for i in data["items"]]
    assert failed > 0 and "fail" in verdicts and "pass" in verdicts, verdicts  # a run with something to sort
    blocking = [i["check"] for i in data["items"] if i["verdict"] == "fail" or (i["verdict"] == "inconclusive" and data["spec"]["inconclusive"] == "fail")]
    rest = [i["check"] for i in data["items"] if i["check"] not in blocking]
    artifacts = _artifacts(tmp_path)

    for width in (1000, 1400):
        browser.open(html.as_uri(), width=width, height=900)
        assert browser.problems() == []
        assert browser.evaluate(EAGER_IMAGES), "every embedded image decodes"
        browser.screenshot(artifacts / f"report-layout-{width}.png")
        facts = browser.evaluate(LAYOUT_FACTS)

        assert facts["viewWidth"] == width
        assert facts["pageWidth"] <= width, f"horizontal overflow at {width} px: {facts['pageWidth']}"
        assert facts["scrolled"] == [], f"a table scrolls sideways at {width} px"
        assert facts["nColumnRight"] <= width, "the n column is cut off"
        # the banner counts what pytest counts failed; blocking items lead, each group in spec order
        assert int(facts["banner"]) == failed == len(blocking) == data.get("blocking", failed)
        assert facts["blocks"][0] == "yes"
        assert facts["blocks"] == ["yes"] * len(blocking) + ["no"] * len(rest)
        assert facts["checks"] == blocking + rest
        # seeds on one line, labels whole
        assert facts["seeds"] > 0 and facts["wrappedSeeds"] == []
        assert facts["clippedSvg"] == [] and facts["clippedHtml"] == [], (facts["clippedSvg"], facts["clippedHtml"])

    # the filter: untick a verdict, then a family; tick them again
    counts = {v: verdicts.count(v) for v in set(verdicts)}
    assert browser.evaluate("document.getElementById('filters').hidden") is False
    _click_filter(browser, "verdict", "pass")
    shown = browser.evaluate(VISIBLE_ROWS)
    assert len(shown) == len(verdicts) - counts["pass"] and all(v != "pass" for v, _ in shown)
    # the "not blocking" group holds only passes here: its heading hides with its rows
    assert {i["verdict"] for i in data["items"] if i["check"] in rest} == {"pass"}
    assert browser.evaluate("document.querySelector('#items tbody.rest').hidden") is True
    assert browser.evaluate("document.querySelector('#items tbody.blocking').hidden") is False
    _click_filter(browser, "family", "hallucination")
    shown = browser.evaluate(VISIBLE_ROWS)
    assert all(v != "pass" and f != "hallucination" for v, f in shown)
    assert len(shown) == sum(1 for i in data["items"] if i["verdict"] != "pass" and i["family"] != "hallucination")
    assert browser.evaluate("document.getElementById('filter-count').textContent") == f"showing {len(shown)} of {len(verdicts)}"
    _click_filter(browser, "verdict", "pass")
    _click_filter(browser, "family", "hallucination")
    assert len(browser.evaluate(VISIBLE_ROWS)) == len(verdicts)
    assert browser.problems() == []


def test_long_subgroup_labels_are_not_clipped(browser, tmp_path):
    """Labels no audit of the built-in vocabulary produces yet (a custom race value, an age):
    the plots' label column grows instead of cutting them."""
    from test_report import make_audit

    from pytest_synthcxr.report import data as report_data
    from pytest_synthcxr.report import html as report_html

    spec = {"findings": ["Effusion"], "samples_per_cell": 10, "thumbnails": 1, "subgroups": {"sex": ["female", "male"], "race": ["White", "Hispanic"]}}
    audit = make_audit(tmp_path, spec={**spec, "bias": [{"metric": "tpr", "statistic": "gap", "max": 0.1}], "hallucination": {"max_rate": 0.05}})
    data = report_data.build(audit)
    long_label = "60-year-old Black or African American female"
    for item in data["items"]:
        for group in item["groups"]:
            group["label"] = long_label if group is item["groups"][0] else group["label"]
    page = tmp_path / "long.html"
    page.write_text(report_html.render(data, audit), encoding="utf-8")
    browser.open(page.as_uri(), width=1000, height=900)
    facts = browser.evaluate(LAYOUT_FACTS)
    assert facts["clippedSvg"] == [] and facts["clippedHtml"] == [], (facts["clippedSvg"], facts["clippedHtml"])
    assert facts["pageWidth"] <= 1000
    assert browser.evaluate(f"Array.from(document.querySelectorAll('svg text.label')).some(t => t.textContent === {long_label!r})")
