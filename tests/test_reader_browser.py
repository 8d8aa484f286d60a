"""The reading page in headless Chromium (DevTools pipe, tests/test_browser.py's client).

One reader opens the page with the session token, reads 20 images with the keyboard only (a
finding at a time: p / a / u, x for not usable, Enter to save), reloads after 10 and resumes at
image 11, changes window and level with [ ] - =; the stored labels are checked against the keys
pressed. Then the real-or-synthetic task (r / s, confidence 1-5). Refused in the browser: a page
without the token (a fresh browser context), a path-traversal URL, a cross-site form post.
Screenshots of both tasks go to $SYNTHCXR_TEST_ARTIFACTS (default: the test's tmp folder).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from test_browser import _artifacts, browser  # noqa: F401 - the fixture
from test_reader_app import Served, build


@pytest.fixture
def served(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    study, store = build(tmp_path / "study", per_cell=2)  # 12 cells x 2 = 24 findings images
    s = Served(study, store, token="browser-token-7f3a")
    yield s
    s.close()


def wait_until(tools: Any, expression: str, timeout: float = 20.0) -> Any:
    """Poll a page expression until it is truthy (the page's own fetches finish on their own time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = tools.evaluate(f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()")  # mid-navigation: no body yet
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def press(tools: Any, key: str) -> None:
    named = {"Enter": 13, "ArrowDown": 40, "ArrowUp": 38}
    params: dict[str, Any] = {"key": key}
    if key in named:
        params.update(code=key, windowsVirtualKeyCode=named[key])
    else:
        params.update(text=key)
    tools.send("Input.dispatchKeyEvent", {"type": "keyDown", **params})
    tools.send("Input.dispatchKeyEvent", {"type": "keyUp", **{k: v for k, v in params.items() if k != "text"}})


IMAGE_READY = "document.body.dataset.image && document.getElementById('view').dataset.painted === document.body.dataset.image"
#: in the page: the largest difference between the shown pixels and window/level applied by hand to
#: the image's own gray levels, and how many pixels the window changed
WINDOW_CHECK = """(() => {
  const img = document.getElementById('img'), view = document.getElementById('view');
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const src = g.getImageData(0, 0, c.width, c.height).data, shown = view.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const w = Number(view.dataset.window), l = Number(view.dataset.level);
  let worst = 0, changed = 0;
  for (let i = 0; i < src.length; i += 4) {
    const want = Math.min(255, Math.max(0, Math.round((src[i] - (l - w / 2)) / w * 255)));
    worst = Math.max(worst, Math.abs(shown[i] - want)); changed += shown[i] !== src[i];
  }
  return [worst, changed, c.width * c.height];
})()"""


def read_one(tools: Any, k: int, questions: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Answer the image on screen with keys only; returns (image, answers) as they should be stored."""
    image = wait_until(tools, f"({IMAGE_READY}) && document.body.dataset.image")
    done = int(tools.evaluate("document.getElementById('progress').dataset.done"))
    if k % 7 == 3:
        press(tools, "x")
        press(tools, "Enter")
        expected = {"usable": "no"}
    else:
        keys = ["p" if (k + j) % 3 == 0 else "u" if (k + j) % 5 == 0 else "a" for j in range(len(questions))]
        for key in keys:
            press(tools, key)
        press(tools, "Enter")
        expected = {q: {"p": "present", "a": "absent", "u": "unsure"}[key] for q, key in zip(questions, keys)} | {"usable": "yes"}
    wait_until(tools, f"Number(document.getElementById('progress').dataset.done) === {done + 1}")
    return image, expected


def test_reading_with_the_keyboard_resume_and_refusals(browser, served, tmp_path):  # noqa: F811
    study, store = served.study, served.store
    questions = study.questions
    order = study.order("findings", "dana")
    browser.open(f"{served.base}/read?task=findings&reader=dana&token={served.token}")
    assert browser.evaluate("location.search") == "?task=findings&reader=dana"  # the token left the URL
    assert "token" not in browser.evaluate("document.cookie")  # HttpOnly: not readable by the page
    wait_until(browser, IMAGE_READY)
    assert browser.evaluate("document.body.innerText").count("Effusion") >= 1
    for hidden in ("Hispanic", "White", "female", "prompt"):  # blinded: no subgroup or prompt on the page
        assert hidden not in browser.evaluate("document.body.innerText")

    expected: dict[str, dict[str, str]] = {}
    for k in range(10):
        image, answers = read_one(browser, k, questions)
        expected[image] = answers
    # window / level from the keyboard, on the 11th image once it is shown
    wait_until(browser, IMAGE_READY)
    for key in ("[", "[", "="):
        press(browser, key)
    assert browser.evaluate("document.getElementById('view').dataset.window") == "223"
    assert browser.evaluate("document.getElementById('view').dataset.level") == "135.5"
    worst, changed, pixels = browser.evaluate(WINDOW_CHECK)
    assert worst <= 1 and 0 < changed <= pixels  # the shown pixels are the image's gray levels, windowed
    artifacts = _artifacts(tmp_path)
    shot = browser.screenshot(artifacts / "reader-findings.png", full_page=False)

    browser.send("Page.reload")  # reload mid-way: the page resumes at the 11th image
    wait_until(browser, f"document.body.dataset.image === {order[10]!r}")
    assert browser.evaluate("document.getElementById('progress').textContent") == f"10 / {len(order)} read"
    for k in range(10, 20):
        image, answers = read_one(browser, k, questions)
        expected[image] = answers
    assert list(expected) == order[:20]
    assert browser.problems() == []

    stored: dict[str, dict[str, str]] = {}
    for row in store.rows():
        if row["reader"] == "dana" and row["task"] == "findings":
            stored.setdefault(row["image_sha"], {})[row["question"]] = row["answer"]
            assert row["kind"] == "generated" and row["cell"] and row["seed"] is not None
    assert stored == expected

    # real or synthetic: r / s, then a confidence key saves and goes on
    browser.open(f"{served.base}/read?task=real-synthetic&reader=dana")
    versus = study.order("real-synthetic", "dana")
    for k, (said, confidence) in enumerate([("s", "4"), ("r", "2"), ("s", "5")]):
        wait_until(browser, f"({IMAGE_READY}) && document.body.dataset.image === {versus[k]!r}")
        press(browser, said)
        press(browser, confidence)
        wait_until(browser, f"Number(document.getElementById('progress').dataset.done) === {k + 1}")
    wait_until(browser, IMAGE_READY)
    press(browser, "s")
    versus_shot = browser.screenshot(artifacts / "reader-real-or-synthetic.png", full_page=False)
    answers = {(r["image_sha"], r["answer"], r["confidence"]) for r in store.rows() if r["reader"] == "dana" and r["task"] == "real-synthetic"}
    assert answers == {(versus[0], "synthetic", 4), (versus[1], "real", 2), (versus[2], "synthetic", 5)}
    assert browser.problems() == []
    assert shot.stat().st_size > 20_000 and versus_shot.stat().st_size > 20_000

    before = len(store.rows())
    # path traversal, plain and encoded: nothing but a refusal comes back
    for path in ("/image/../../etc/passwd", "/image/..%2f..%2fetc%2fpasswd", "/image/%2e%2e/%2e%2e/etc/passwd"):
        browser.open(served.base + path)
        text = browser.evaluate("document.body.innerText")
        assert "root:" not in text and ("no such image" in text or "Not Found" in text), path
    # a cross-site form post (a page of another origin posting to the server): refused, nothing stored
    evil = (
        "data:text/html,<form method=post action='" + served.base + "/api/answer' enctype='text/plain'>"
        "<input name='{\"task\":\"real-synthetic\",\"reader\":\"eve\",\"x\":\"' value='\"}'></form>"
        "<script>document.forms[0].submit()</script>"
    )
    browser.open(evil)
    wait_until(browser, "location.href.startsWith('http://127.0.0.1')")
    assert "refused" in browser.evaluate("document.body.innerText") or "token" in browser.evaluate("document.body.innerText")
    assert len(store.rows()) == before and "eve" not in {r["reader"] for r in store.rows()}
    # a browser without the token (a fresh context: no cookie) is refused
    context = browser.send("Target.createBrowserContext", session=False)["browserContextId"]
    target = browser.send("Target.createTarget", {"url": served.base + "/read?task=findings&reader=zed", "browserContextId": context}, session=False)["targetId"]
    browser.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
    browser.send("Runtime.enable")
    text = wait_until(browser, "document.readyState === 'complete' && document.body && document.body.innerText")
    assert "session token is required" in text
    assert "zed" not in {r["reader"] for r in store.rows()}
