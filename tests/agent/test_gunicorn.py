"""Real gunicorn with three uvicorn workers, with and without --preload: one agent, one local store with every
worker's turns, one Prometheus scrape (the agent's port, and the route the app mounts) counting all of them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.agent.helpers import Server, agent_pids, agent_status, count_spans, free_port, wait_for

pytestmark = pytest.mark.timeout(300)

TURNS = 30


def _llm_calls(exposition: str) -> float:
    """Sum of the LLM-duration histogram's counts over every series."""
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^gen_ai_client_operation_duration_seconds_count\{[^}]*\} (\S+)$", exposition, re.M)
    )


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_three_workers_one_agent_one_store_one_scrape(tmp_path: Path, preload: bool) -> None:
    db = tmp_path / "traces.db"
    directory = os.environ["CHATOBS_AGENT_DIR"]
    port = free_port()
    server = Server(db, gunicorn=True, workers=3, preload=preload, CHATOBS_PROMETHEUS_PORT=str(port))
    try:
        from concurrent.futures import ThreadPoolExecutor

        def turn(i: int) -> httpx.Response:
            # A fresh connection per turn, several at once, so the workers share the turns.
            return httpx.post(
                f"{server.url}/api/chat",
                json={"message": f"turn {i}", "conversation_id": f"c{i}"},
                headers={"x-user-id": "u1", "connection": "close"},
                timeout=30,
            )

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(turn, range(TURNS)))
        assert [r.status_code for r in responses] == [200] * TURNS
        pids = {r.json()["pid"] for r in responses}
        assert len(pids) >= 2, pids
        assert wait_for(lambda: count_spans(db, "name = 'chat fake-model'") == TURNS, 30), count_spans(db)
        assert len(agent_pids(directory)) == 1
        status = agent_status(directory)
        # Every worker that served a turn has its own connection (preload: each re-connected after the fork); a worker
        # the load balancer gave no turn may not have connected yet, so the count of connections is not checked.
        client_pids = {c["pid"] for c in status["clients"]}
        assert pids <= client_pids, (pids, client_pids)
        # One Prometheus endpoint, served by the agent, counts every worker's turns...
        scraped = wait_for(
            lambda: (
                _llm_calls(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text) == TURNS
                and httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            ),
            30,
        )
        assert scraped, httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text[-2000:]
        # ...and so does the route the app mounts, whichever worker answers.
        for _ in range(3):
            assert _llm_calls(server.client.get("/metrics/").text) == TURNS
    finally:
        output = server.stop()
    assert "Traceback" not in output, output[-3000:]
