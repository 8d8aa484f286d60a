"""The reader study without a browser: the labels store, the stratified sample, and the web app's
security and answers over real HTTP (uvicorn in a thread, http.client as the client)."""

from __future__ import annotations

import http.client
import json
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_synthcxr.reader.store import LabelStore, StudyImage

SPEC = """
seed = 7
findings = ["Effusion", "Cardiomegaly"]
samples_per_cell = 12
cache_images = "always"
[subgroups]
sex = ["female", "male"]
race = ["White", "Hispanic"]
[[validity]]
min_sensitivity = 0.5
[[hallucination]]
max_rate = 0.2
"""


def make_cache(tmp: Path, spec_text: str = SPEC, per_cell: int = 6) -> tuple[Path, Path]:
    """A spec file and a sample cache holding phantom images of its cells (samples 0..per_cell-1)."""
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.models.generators.phantom import PhantomGenerator
    from pytest_synthcxr.sampling.cache import SampleCache, sample_key
    from pytest_synthcxr.sampling.cells import derive_seed
    from pytest_synthcxr.sampling.plan import cell_budgets
    from pytest_synthcxr.spec.schema import load_spec

    tmp.mkdir(parents=True, exist_ok=True)
    spec_path = tmp / "study.synthcxr.toml"
    spec_path.write_text(spec_text)
    spec = load_spec(spec_path).spec
    generator = PhantomGenerator("phantom-biased", size=96)
    cache = SampleCache(tmp / "cache")
    rows = []
    for cell, budget in sorted(cell_budgets(build_checks(spec)).items(), key=lambda kv: kv[0].key):
        for i in range(min(budget, per_cell)):
            seed = derive_seed(spec.seed, cell.seed_key, i)
            rows.append((sample_key(generator.fingerprint, cell.prompt, seed), cell.prompt, seed))
    images = generator.generate([r[1] for r in rows], [r[2] for r in rows])
    cache.put_samples(generator.fingerprint, rows, images, [True] * len(rows), store=True)
    cache.close()
    return spec_path, tmp / "cache"


def build(tmp: Path, reference: str | None = "phantom:16", per_cell: int = 2) -> tuple[Any, LabelStore]:
    from pytest_synthcxr.reader.__main__ import build_parser, prepare

    spec_path, cache = make_cache(tmp)
    argv = ["--spec", str(spec_path), "--cache-dir", str(cache), "--per-cell", str(per_cell), "--versus-images", "8"]
    if reference:
        argv += ["--reference", reference]
    return prepare(build_parser().parse_args(argv))


class Served:
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread."""

    def __init__(self, study: Any, store: LabelStore, token: str = "test-token-123", readers: tuple[str, ...] = ()) -> None:
        import uvicorn

        from pytest_synthcxr.reader.app import create_app

        self.study, self.store, self.token = study, store, token
        self.app = create_app(study, store, token=token, readers=readers)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, cookie: bool = True) -> tuple[int, bytes, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        h = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if cookie:
            from pytest_synthcxr.reader.app import cookie_name

            h["Cookie"] = f"{cookie_name(self.token)}={self.token}"
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        conn.request(method, path, body=data, headers=h)
        response = conn.getresponse()
        out = response.status, response.read(), response.headers
        conn.close()
        return out

    def post_answer(self, body: dict[str, Any], **overrides: Any) -> int:
        from pytest_synthcxr.reader.app import csrf_token

        headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf_token(self.token), "Origin": self.base}
        headers.update(overrides)
        return self.request("POST", "/api/answer", body, headers)[0]

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    study, store = build(tmp_path_factory.mktemp("reader"))
    s = Served(study, store)
    yield s
    s.close()


# -- the store ----------------------------------------------------------------------------------


def test_store_one_row_per_reader_image_question_latest_wins(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.register([StudyImage("a" * 64, "generated", "Effusion|sex=female|plain", 11, "p", "female", "Effusion")])
    store.answer("r1", "a" * 64, "findings", {"Effusion": "present", "usable": "yes"})
    store.answer("r1", "a" * 64, "findings", {"Effusion": "absent", "usable": "yes"})
    store.answer("r2", "a" * 64, "findings", {"Effusion": "present", "usable": "yes"})
    rows = store.rows()
    assert len(rows) == 4
    mine = [r for r in rows if r["reader"] == "r1" and r["question"] == "Effusion"]
    assert [r["answer"] for r in mine] == ["absent"] and mine[0]["cell"] == "Effusion|sex=female|plain" and mine[0]["seed"] == 11
    assert store.answered("r1", "findings") == {"a" * 64} and store.answered("r3", "findings") == set()
    assert sqlite3.connect(tmp_path / "labels.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    out = tmp_path / "labels.csv"
    assert store.export_csv(out) == 4 and out.read_text().splitlines()[0].startswith("reader,image_sha,kind,cell,seed")


def test_store_many_writers_lose_nothing(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")

    def write(reader: str) -> None:
        own = LabelStore(tmp_path / "labels.sqlite")  # each reader its own connection
        for i in range(40):
            own.answer(reader, f"{i:064x}", "real-synthetic", {"synthetic": "real"}, 3)

    threads = [threading.Thread(target=write, args=(f"r{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.rows()) == 160


def test_a_killed_writer_loses_no_acknowledged_answer(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "labels.sqlite"
    code = (
        "import os, sys; from pytest_synthcxr.reader.store import LabelStore; s = LabelStore(sys.argv[1])\n"
        "for i in range(25): s.answer('r', f'{i:064x}', 'findings', {'usable': 'no'})\n"
        "print('acknowledged', flush=True); os._exit(9)  # killed: no clean shutdown, no checkpoint\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(db)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 9 and "acknowledged" in out.stdout
    assert len(LabelStore(db).rows()) == 25


# -- the study ----------------------------------------------------------------------------------


def test_study_is_stratified_seeded_and_blinded(tmp_path):
    study, _ = build(tmp_path, per_cell=2)
    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.sampling.plan import cell_budgets
    from pytest_synthcxr.spec.schema import load_spec

    cells = {c.key for c in cell_budgets(build_checks(load_spec(tmp_path / "study.synthcxr.toml").spec))}
    per_cell: dict[str, int] = {}
    for image in study.findings:
        per_cell[image.cell] = per_cell.get(image.cell, 0) + 1
    assert set(per_cell) == cells and set(per_cell.values()) == {2}  # every cell, so every subgroup, is read
    assert {i.subgroup for i in study.findings} >= {"White female", "Hispanic female", "White male", "Hispanic male"}
    again, _ = build(tmp_path / "again", per_cell=2)
    assert [i.image_sha for i in again.findings] == [i.image_sha for i in study.findings]  # seeded
    assert study.order("findings", "alice") != study.order("findings", "bob")
    assert sorted(study.order("findings", "alice")) == sorted(i.image_sha for i in study.findings)
    kinds = [i.kind for i in study.versus]
    assert kinds.count("reference") == kinds.count("generated") == 4
    assert study.questions == ("Effusion", "Cardiomegaly", "COVID-19")


def test_images_only_by_listed_hash(tmp_path):
    study, _ = build(tmp_path, per_cell=1)
    sha = study.findings[0].image_sha
    assert study.png(sha)[:8] == b"\x89PNG\r\n\x1a\n"
    assert study.png(study.versus[-1].image_sha)[:4] == b"\x89PNG"
    for bad in ("0" * 64, "../../etc/passwd", sha.upper(), sha + "/../x", "images/" + sha[:2] + "/" + sha + ".png"):
        assert study.png(bad) is None
    # a cached image of the spec's cells that the study did not pick is not served either
    import sqlite3

    listed = {i.image_sha for i in study.findings + study.versus}
    with sqlite3.connect(tmp_path / "cache" / "index.sqlite") as db:
        cached = {row[0] for row in db.execute("SELECT image_sha FROM samples WHERE file IS NOT NULL")}
    others = sorted(cached - listed)
    assert others and all(study.png(o) is None and not study.known(o) for o in others)


def test_a_cache_without_stored_images_is_one_line(tmp_path):
    from pytest_synthcxr.reader.study import StudyError, build_study

    (tmp_path / "cache").mkdir()
    with pytest.raises(StudyError, match="no sample cache here"):
        build_study([], tmp_path / "cache", base_seed=0, questions=("Effusion",))


# -- the app over HTTP --------------------------------------------------------------------------


def test_every_request_needs_the_token(served):
    for path in ("/", "/read?task=findings&reader=a", "/api/next?task=findings&reader=a", f"/image/{served.study.findings[0].image_sha}", "/export.csv"):
        status, body, _ = served.request("GET", path, cookie=False)
        assert status == 403, path
    status, _, _ = served.request("GET", "/?token=wrong", cookie=False)
    assert status == 403
    status, _, headers = served.request("GET", f"/?token={served.token}", cookie=False)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    status, body, headers = served.request("GET", "/")
    assert status == 200 and b"Reader study" in body
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_a_foreign_host_header_is_refused(served):
    status, _, _ = served.request("GET", "/", headers={"Host": f"evil.example:{served.port}"})
    assert status == 403


@pytest.mark.parametrize("path", [
    "/image/../../etc/passwd", "/image/..%2f..%2fetc%2fpasswd", "/image/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/image/..%5c..%5cetc%5cpasswd", "/image/" + "0" * 64, "/image/images%2fab%2fcd.png",
])
def test_path_traversal_is_refused(served, path):
    status, body, _ = served.request("GET", path)
    assert status in (403, 404) and b"root:" not in body


def test_cross_site_posts_are_refused(served):
    image = served.study.order("real-synthetic", "mallory")[0]
    body = {"task": "real-synthetic", "reader": "mallory", "image": image, "answer": "real", "confidence": 2}
    assert served.post_answer(body, Origin="http://evil.example") == 403
    assert served.post_answer(body, **{"X-CSRF-Token": "guess"}) == 403
    from pytest_synthcxr.reader.app import csrf_token

    # a classic cross-site form post: no CSRF header, form encoding, no cookie (SameSite=Strict)
    status, _, _ = served.request("POST", "/api/answer", b"task=real-synthetic", {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}, cookie=False)
    assert status == 403
    headers = {"Content-Type": "text/plain", "X-CSRF-Token": csrf_token(served.token), "Origin": served.base}
    assert served.request("POST", "/api/answer", json.dumps(body).encode(), headers)[0] == 415
    assert "mallory" not in {r["reader"] for r in served.store.rows()}
    assert served.post_answer(body) == 200
    assert "mallory" in {r["reader"] for r in served.store.rows()}


def test_answers_are_validated_and_resumed(served):
    study = served.study
    order = study.order("findings", "carol")
    status, body, _ = served.request("GET", "/api/next?task=findings&reader=carol")
    assert status == 200 and json.loads(body) == {"total": len(order), "done": 0, "image": order[0]}
    answers = {q: "absent" for q in study.questions}
    assert served.post_answer({"task": "findings", "reader": "carol", "image": order[0], "answers": {"Effusion": "present"}}) == 400
    assert served.post_answer({"task": "findings", "reader": "carol", "image": order[0], "answers": {**answers, "Effusion": "maybe"}}) == 400
    assert served.post_answer({"task": "findings", "reader": "carol", "image": "f" * 64, "answers": answers}) == 400
    assert served.post_answer({"task": "findings", "reader": "../x", "image": order[0], "answers": answers}) == 400
    assert served.post_answer({"task": "findings", "reader": "carol", "image": order[0], "answers": answers}) == 200
    assert served.post_answer({"task": "findings", "reader": "carol", "image": order[1], "usable": False}) == 200
    status, body, _ = served.request("GET", "/api/next?task=findings&reader=carol")
    assert json.loads(body)["image"] == order[2] and json.loads(body)["done"] == 2
    assert served.post_answer({"task": "real-synthetic", "reader": "carol", "image": study.order("real-synthetic", "carol")[0], "answer": "synthetic", "confidence": 6}) == 400
    rows = [r for r in served.store.rows() if r["reader"] == "carol"]
    assert {(r["question"], r["answer"]) for r in rows if r["image_sha"] == order[1]} == {("usable", "no")}
    assert len([r for r in rows if r["image_sha"] == order[0]]) == len(study.questions) + 1
    status, body, _ = served.request("GET", "/export.csv")
    assert status == 200 and body.decode().count("carol") == len(rows)


def test_cli_export_and_missing_extra_message(tmp_path, capsys):
    from pytest_synthcxr.reader.__main__ import main

    store = LabelStore(tmp_path / "l.sqlite")
    store.answer("r", "a" * 64, "findings", {"usable": "no"})
    assert main(["export", "--labels", str(tmp_path / "l.sqlite"), "--out", str(tmp_path / "l.csv")]) == 0
    assert (tmp_path / "l.csv").read_text().count("\n") == 2
    assert main(["export", "--labels", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 50)
    assert main(["export", "--labels", str(tmp_path / "junk.sqlite"), "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot export" in err and "Traceback" not in err
    assert main(["export", "--labels", str(tmp_path / "l.sqlite"), "--out", str(tmp_path / "no" / "such" / "x.csv")]) == 2
    assert "cannot export" in capsys.readouterr().err


def test_images_in_cache_shards_are_found(tmp_path):
    """A distributed fill writes shards/<name>/ caches beside the top index: the study reads them."""
    import shutil

    from pytest_synthcxr.checks import build_checks
    from pytest_synthcxr.reader.study import build_study
    from pytest_synthcxr.sampling.cache import SampleCache
    from pytest_synthcxr.spec.schema import load_spec

    spec_path, cache = make_cache(tmp_path / "made", per_cell=2)
    top = tmp_path / "top"
    SampleCache(top).close()  # an empty top index
    (top / "shards").mkdir()
    shutil.copytree(cache, top / "shards" / "rank-1")
    study = build_study(build_checks(load_spec(spec_path).spec), top, base_seed=7, questions=("Effusion",), per_cell=1)
    assert study.findings and all(study.png(i.image_sha) for i in study.findings)


def test_the_command_serves_on_localhost_and_prints_the_token(tmp_path):
    """python -m pytest_synthcxr.reader as a user runs it: the printed URL works, nothing else does."""
    pytest.importorskip("uvicorn")
    import re
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    spec_path, cache = make_cache(tmp_path, per_cell=2)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_synthcxr.reader", "--spec", str(spec_path), "--cache-dir", str(cache), "--port", "0", "--per-cell", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        url = re.search(r"open (http://127\.0\.0\.1:\d+/\?token=[\w-]+)", lines[1])
        assert url, lines
        assert "findings images" in lines[0] and str(cache / "reader-labels.sqlite") in lines[0]

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(url.group(1), timeout=20)
        assert redirect.value.code == 303 and "synthcxr_reader_" in redirect.value.headers["set-cookie"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url.group(1).split("?")[0], timeout=20)
        assert refused.value.code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()
        proc.stderr.close()
    assert (cache / "reader-labels.sqlite").is_file()


def test_a_bad_spec_or_cache_is_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pytest_synthcxr.reader", "--spec", str(tmp_path / "none.toml"), "--cache-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and out.stderr.strip().count("\n") == 0 and "spec file not found" in out.stderr
    spec_path, _ = make_cache(tmp_path / "s", per_cell=1)
    out = subprocess.run([sys.executable, "-m", "pytest_synthcxr.reader", "--spec", str(spec_path), "--cache-dir", str(tmp_path / "empty")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and out.stderr.strip().count("\n") == 0 and "no sample cache here" in out.stderr


def test_several_readers_post_at_once(served):
    """Four readers answering concurrently over HTTP: every answer stored, none lost."""
    study = served.study
    readers = [f"conc{k}" for k in range(4)]

    def read_all(reader: str) -> None:
        for sha in study.order("real-synthetic", reader):
            assert served.post_answer({"task": "real-synthetic", "reader": reader, "image": sha, "answer": "real", "confidence": 3}) == 200

    threads = [threading.Thread(target=read_all, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [r for r in served.store.rows() if r["reader"] in readers]
    assert len(stored) == 4 * len(study.versus)
    for r in readers:
        status, body, _ = served.request("GET", f"/api/next?task=real-synthetic&reader={r}")
        assert json.loads(body) == {"total": len(study.versus), "done": len(study.versus), "image": None}


def test_only_listed_reader_ids(tmp_path):
    pytest.importorskip("uvicorn")
    study, store = build(tmp_path, reference=None, per_cell=1)
    s = Served(study, store, readers=("alice",))
    try:
        image = study.order("findings", "alice")[0]
        answers = {q: "absent" for q in study.questions}
        assert s.post_answer({"task": "findings", "reader": "mallory", "image": image, "answers": answers}) == 400
        assert s.post_answer({"task": "findings", "reader": "alice", "image": image, "answers": answers}) == 200
        status, body, _ = s.request("GET", "/")
        assert b"<option>alice</option>" in body and b"real-synthetic" in body  # the task without images is shown disabled
    finally:
        s.close()


def test_without_the_extra_the_command_says_what_to_install(tmp_path):
    import subprocess
    import sys

    code = "import sys; sys.modules['uvicorn'] = None\nfrom pytest_synthcxr.reader.__main__ import main\nsys.exit(main(['--cache-dir', '.']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2 and "pip install 'pytest-synthcxr[reader]'" in out.stderr and "Traceback" not in out.stderr
