"""The trace viewer: its JSON API and guard over HTTP, and the page itself in a real headless Chromium."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatobs.tools.viewer import create_app, is_loopback
from tests.conftest import REPO

from .conftest import XSS_PROMPT

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def client(app, host: str = "127.0.0.1", base: str = "http://127.0.0.1") -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(host, 5555)), base_url=base)


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("[::1]")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("10.1.2.3")
        and not is_loopback("example.com")
        and not is_loopback("")
    )


async def test_api_and_headers(filled) -> None:  # type: ignore[no-untyped-def]
    db, ids = filled
    async with client(create_app(db)) as c:
        page = await c.get("/")
        assert page.status_code == 200 and "static/app.js" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        convs = (await c.get("/api/conversations")).json()["data"]
        assert {x["conversation_id"] for x in convs} == {"conv-alice", "conv-bob", "conv-carol"}
        turns = (await c.get("/api/conversations/conv-bob")).json()["data"]["turns"]
        assert [t["input"] for t in turns] == [XSS_PROMPT, "And 3+3?"]
        trace = (await c.get(f"/api/traces/{ids['alice1']}")).json()["data"]
        assert [s["span_type"] for s in trace["spans"]] == ["request", "llm", "tool"]
        assert (await c.get("/api/traces", params={"status": "error"})).json()["data"][0]["status"] == "error"
        stats = (await c.get("/api/stats", params={"since": "1d"})).json()["data"]
        assert stats["totals"]["traces"] == 5 and stats["totals"]["turns"] == 5
        assert (await c.get("/api/traces/ffffffffffff")).status_code == 404
        assert (await c.post("/api/traces")).status_code == 405  # read-only
        assert (await c.get("/static/../app.py")).status_code == 404


async def test_missing_store_answers_empty(tmp_path: Path) -> None:
    async with client(create_app(tmp_path / "none.db")) as c:
        body = (await c.get("/api/traces")).json()
        assert body["missing"] is True and body["data"] == []


async def test_guard(filled) -> None:  # type: ignore[no-untyped-def]
    db, _ = filled
    app = create_app(db, token=None)
    async with client(app, host="192.168.1.20") as c:
        r = await c.get("/api/traces")
        assert r.status_code == 403 and "CHATOBS_VIEWER_TOKEN" in r.text
    async with client(app, base="http://evil.example") as c:  # DNS rebinding: loopback client, foreign Host
        assert (await c.get("/api/traces")).status_code == 403
    async with client(app) as c:  # a reverse proxy makes every client look local
        assert (await c.get("/api/traces", headers={"x-forwarded-for": "203.0.113.9"})).status_code == 403

    app = create_app(db, token="s3cret-token")
    async with client(app, host="192.168.1.20", base="http://viewer.internal") as c:
        assert (await c.get("/api/traces")).status_code == 401
        assert (await c.get("/api/traces", headers={"authorization": "Bearer wrong"})).status_code == 401
        assert (await c.get("/api/traces", headers={"authorization": "Bearer s3cret-token"})).status_code == 200
        page = await c.get("/?token=s3cret-token")
        assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
        assert (await c.get("/api/traces")).status_code == 200  # the cookie now


async def test_token_from_environment(filled, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    db, _ = filled
    monkeypatch.setenv("CHATOBS_VIEWER_TOKEN", "env-token")
    async with client(create_app(db), host="10.0.0.8") as c:
        assert (await c.get("/api/traces", params={"token": "env-token"})).status_code == 200


async def test_mounted_in_an_app(filled) -> None:  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.routing import Mount

    db, _ = filled
    host = Starlette(routes=[Mount("/_chatobs", app=create_app(db))])
    async with client(host) as c:
        r = await c.get("/_chatobs")
        assert r.status_code in (307, 308) and r.headers["location"].endswith("/_chatobs/")
        assert "static/app.js" in (await c.get("/_chatobs/")).text
        assert (await c.get("/_chatobs/static/app.css")).status_code == 200
        assert len((await c.get("/_chatobs/api/traces")).json()["data"]) == 5


@pytest.fixture
def served(filled) -> Iterator[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    import uvicorn

    db, ids = filled
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}/", ids
    server.should_exit = True
    thread.join(5)


@pytest.mark.timeout(90)
@pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary: apt-get install -y chromium (Debian) to run the browser test"
)
def test_browser_opens_a_trace_and_never_runs_prompt_markup(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    playwright = pytest.importorskip("playwright.sync_api", reason="pip package playwright is not installed")
    url, ids = served
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, timeout=30000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(10000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            # Conversations list -> a conversation's turns; the prompt with markup is shown as text.
            page.get_by_text("conv-bob").click()
            bubble = page.locator(".bubble.user").first
            bubble.wait_for()
            assert bubble.inner_text() == XSS_PROMPT
            assert page.locator(".bubble img").count() == 0 and page.locator("main script").count() == 0
            assert page.evaluate("window.__pwned") is None

            # A trace: the timeline tree with the tool span, its details on click.
            page.goto(url + "#/t/" + ids["alice2"])
            tool = page.locator('.span-row[data-type="tool"]')
            tool.wait_for()
            assert "execute_tool search_docs" in tool.inner_text()
            assert page.locator('.span-row[data-type="llm"]').count() == 1
            assert page.locator('.span-row[data-type="request"]').count() == 1
            tool.click()
            details = page.locator("#span-details")
            assert "index offline" in details.inner_text() and "kb" in details.inner_text()

            # The XSS trace's LLM span details: prompt content rendered verbatim as text.
            page.goto(url + "#/t/" + ids["bob1"])
            page.locator('.span-row[data-type="llm"]').wait_for()
            pre = page.locator('pre[data-key="gen_ai.input.messages"]')
            pre.wait_for()
            assert "<script>window.__pwned = 1</script>" in pre.inner_text()
            assert page.evaluate("window.__pwned") is None

            # Screenshot for the docs: a trace with an LLM call and a tool call, details open.
            page.goto(url + "#/t/" + ids["alice1"])
            page.locator('.span-row[data-type="tool"]').wait_for()
            page.locator('.span-row[data-type="llm"]').click()
            # Written to docs/ only when asked (CHATOBS_UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean.
            shot = (
                REPO / "docs" / "images" if os.environ.get("CHATOBS_UPDATE_SCREENSHOTS") else tmp_path
            ) / "viewer.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000

            # Stats as charts.
            page.goto(url + "#/stats")
            page.locator(".chart").first.wait_for()
            assert page.locator(".chart").count() >= 10
            assert "Latency by route" in page.locator("main").inner_text()
            assert errors == []
        finally:
            browser.close()
