"""kill -9 of the agent under load: no request fails, the next process to notice starts a new agent, and what the
dead one held is counted (client side: spans sent since the last acknowledgement) and shown in the agent's status."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.agent.helpers import Server, agent_pids, agent_status, count_spans, wait_for

pytestmark = pytest.mark.timeout(240)


def test_kill_9_of_the_agent_mid_load_fails_no_request_and_the_agent_comes_back(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    directory = os.environ["CHATOBS_AGENT_DIR"]
    server = Server(db)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            statuses.append(server.chat(f"hello {i}", conversation_id=f"c{i % 5}").status_code)
            i += 1

    try:
        assert server.chat("warm up").status_code == 200
        first = wait_for(lambda: agent_pids(directory), 60)
        assert len(first) == 1
        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.5)
        os.kill(first[0], signal.SIGKILL)
        # The app's sender notices the broken connection and starts the next agent itself.
        second = wait_for(lambda: [p for p in agent_pids(directory) if p != first[0]], 60)
        time.sleep(1.5)
        stop.set()
        for w in workers:
            w.join(30)
        assert second, "a new agent"
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        # After the restart spans flow again: a turn made now lands in the new agent's store.
        last = server.chat("after the restart", conversation_id="after")
        assert last.status_code == 200
        # Every turn is two spans (request, LLM call): each is in the store, or counted as lost (unacknowledged when
        # the agent died), except those the dead agent had acknowledged and not yet written (docs/agent.md: at most
        # about one export interval's worth, 50 ms here).
        turns = len(statuses) + 2
        slack = max(20, turns // 20)
        assert wait_for(lambda: _accounted(directory, db) >= 2 * turns - slack, 30), (
            _accounted(directory, db),
            2 * turns,
        )
        assert wait_for(lambda: count_spans(db, "name = 'POST /api/chat'") and _has_turn(db, "after"), 30)
    finally:
        stop.set()
        server.stop()


def _has_turn(db: Path, conversation: str) -> bool:
    return count_spans(db, f"conversation_id = '{conversation}'") > 0


def _accounted(directory: str, db: Path) -> int:
    try:
        status = agent_status(directory)
    except Exception:  # noqa: BLE001 - the socket may be between agents
        return 0
    lost = sum(n for k, n in status["stats"]["dropped"].items() if k.startswith("app:"))
    return count_spans(db) + lost
