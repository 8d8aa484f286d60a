"""The reading page: a FastAPI application over one Study and one LabelStore.

Security model (docs/reader.md):
- binds 127.0.0.1 unless told otherwise; requests whose Host is not the bound host are refused
  (DNS rebinding);
- a per-session token (printed at start) is required on every request: given once as ``?token=``,
  it becomes an HttpOnly, SameSite=Strict cookie and the page reloads without it in the URL;
- answers are JSON posts carrying an ``X-CSRF-Token`` header (derived from the session token and
  written into the page) and a same-origin ``Origin`` (or ``Referer``): a cross-site form or
  fetch carries neither the cookie (SameSite=Strict) nor the header, and is refused;
- images only by content hash (``/image/<64 hex>``) among the study's own images: no path from a
  request reaches the file system;
- a Content-Security-Policy with a per-response nonce: no inline script but the page's own, no
  frames (clickjacking), no outside requests.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request  # the [reader] extra; this module is imported only to serve a study
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from .store import FINDING_ANSWERS, TASKS, LabelStore, write_csv
from .study import SHA, Study

COOKIE = "synthcxr_reader"


def cookie_name(token: str) -> str:
    """The session cookie's name: one per session (cookies are per host, not per port, so two
    studies served on one machine would otherwise overwrite each other's)."""
    return f"{COOKIE}_{hashlib.sha256(token.encode()).hexdigest()[:10]}"
READER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,40}$")
TASK_TITLES = {"findings": "Findings", "real-synthetic": "Real or synthetic"}


def csrf_token(token: str) -> str:
    return hmac.new(token.encode(), b"synthcxr-reader-csrf", hashlib.sha256).hexdigest()


def create_app(study: Study, store: LabelStore, *, token: str | None = None, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), readers: tuple[str, ...] = ()) -> Any:
    """The ASGI application. `hosts`: accepted Host header names; `readers`: allowed reader ids
    (empty: any id matching READER_ID)."""
    from ..report.html import templates_dir

    token = token or secrets.token_urlsafe(24)
    csrf = csrf_token(token)
    cookie_key = cookie_name(token)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token = token
    store.register([*study.findings, *study.versus])
    env = _environment(str(templates_dir()))

    def refuse(status: int, why: str) -> Response:
        return PlainTextResponse(why, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in hosts:
            return refuse(403, "host not allowed")
        given = request.query_params.get("token")
        cookie = request.cookies.get(cookie_key, "")
        if not hmac.compare_digest(cookie.encode(), token.encode()):
            if given is not None and hmac.compare_digest(given.encode(), token.encode()) and request.method == "GET":
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                target = request.url.path + (f"?{query}" if query else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(cookie_key, token, httponly=True, samesite="strict", path="/")
                return response
            return refuse(403, "a valid session token is required (open the URL printed when the server started)")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin") or request.headers.get("referer") or ""
            expected = f"{request.url.scheme}://{request.headers.get('host')}"
            if not (origin == expected or origin.startswith(expected + "/")):
                return refuse(403, "cross-site request refused")
            if not hmac.compare_digest(request.headers.get("x-csrf-token", "").encode(), csrf.encode()):
                return refuse(403, "missing or wrong CSRF token")
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return refuse(415, "answers are JSON")
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def page(name: str, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = env.get_template(name).render(nonce=nonce, csrf=csrf, **context)
        policy = f"default-src 'none'; img-src 'self'; style-src 'self' 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        return HTMLResponse(html, headers={"Content-Security-Policy": policy})

    def reader_ok(reader: str) -> bool:
        return bool(READER_ID.match(reader)) and (not readers or reader in readers)

    @app.get("/")
    def start() -> HTMLResponse:
        counts = {t: len(study.images(t)) for t in TASKS}
        return page("reader/start.html.j2", readers=readers, counts=counts, titles=TASK_TITLES)

    @app.get("/read")
    def read(task: str = "findings", reader: str = "") -> Response:
        if task not in TASKS:
            return refuse(404, "unknown task")
        if not reader_ok(reader):
            return RedirectResponse("/", status_code=303)
        return page("reader/read.html.j2", task=task, reader=reader, questions=study.questions, title=TASK_TITLES[task], answers=FINDING_ANSWERS)

    @app.get("/api/next")
    def next_image(task: str, reader: str) -> Response:
        if task not in TASKS or not reader_ok(reader):
            return refuse(400, "unknown task or reader id")
        order = study.order(task, reader)
        done = store.answered(reader, task)
        todo = [sha for sha in order if sha not in done]
        return JSONResponse({"total": len(order), "done": len(order) - len(todo), "image": todo[0] if todo else None})

    @app.post("/api/answer")
    async def answer(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return refuse(400, "not JSON")
        if not isinstance(body, dict):
            return refuse(400, "not a JSON object")
        task, reader, sha = body.get("task"), body.get("reader"), body.get("image")
        if task not in TASKS or not isinstance(reader, str) or not reader_ok(reader):
            return refuse(400, "unknown task or reader id")
        if not isinstance(sha, str) or sha not in {i.image_sha for i in study.images(task)}:
            return refuse(400, "not an image of this task")
        if task == "findings":
            answers = body.get("answers")
            usable = body.get("usable", True)
            if usable is False:
                stored = {"usable": "no"}
            elif not isinstance(answers, dict) or set(answers) != set(study.questions) or any(a not in FINDING_ANSWERS for a in answers.values()):
                return refuse(400, f"answer every finding ({', '.join(study.questions)}) with one of {', '.join(FINDING_ANSWERS)}")
            else:
                stored = {**answers, "usable": "yes"}
            store.answer(reader, sha, task, stored)
        else:
            said, confidence = body.get("answer"), body.get("confidence")
            if said not in ("synthetic", "real") or not isinstance(confidence, int) or isinstance(confidence, bool) or not 1 <= confidence <= 5:
                return refuse(400, "answer 'synthetic' or 'real' with a confidence 1-5")
            store.answer(reader, sha, task, {"synthetic": said}, confidence)
        return JSONResponse({"stored": True})

    @app.get("/image/{sha}")
    def image(sha: str) -> Response:
        data = study.png(sha) if SHA.match(sha) else None
        if data is None:
            return refuse(404, "no such image")
        return Response(data, media_type="image/png")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # no icon; without the route every page logs a 404

    @app.get("/export.csv")
    def export() -> Response:
        buffer = io.StringIO()
        write_csv(buffer, store.rows())
        return Response(buffer.getvalue(), media_type="text/csv", headers={"Content-Disposition": "attachment; filename=reader-labels.csv"})

    return app


def _environment(folder: str) -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True, undefined=jinja2.StrictUndefined)
