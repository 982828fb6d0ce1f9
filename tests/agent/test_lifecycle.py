"""The agent's life: started by the first app that needs it, shared, handed every span at shutdown, flushed on
SIGTERM, gone when idle."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.agent.helpers import agent_pids, agent_sockets, agent_status, count_spans, wait_for
from tests.conftest import PYTHON, REPO, subprocess_env

pytestmark = pytest.mark.timeout(180)

# An app script: N spans of one trace each, then exit (atexit shutdown hands the queue to the agent).
_SCRIPT = textwrap.dedent("""
    import os, sys, time
    import chatobs
    n, tag = int(sys.argv[1]), sys.argv[2]
    rt = chatobs.init(service_name=f"app-{tag}")
    assert type(rt.pipeline).__name__ == "HandoffProcessor", rt.pipeline
    tracer = chatobs.get_tracer()
    for i in range(n):
        with tracer.start_as_current_span(f"{tag}-{i}", attributes={"i": i}):
            pass
    if len(sys.argv) > 3:
        time.sleep(float(sys.argv[3]))
    print(os.getpid())
""")


def _app(n: int, tag: str, db: Path, hold_s: float = 0.0, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", _SCRIPT, str(n), tag, str(hold_s)],
        cwd=str(REPO),
        env=subprocess_env(CHATOBS_LOCAL_DB=str(db), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _agent_dir() -> str:
    return os.environ["CHATOBS_AGENT_DIR"]


def test_an_app_with_no_agent_running_starts_one_and_its_spans_land_in_the_store(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    assert agent_pids(_agent_dir()) == []
    p = _app(300, "solo", db)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    # Everything was handed over at exit (nothing lost with the store up), and the agent outlives the app.
    assert count_spans(db) == 300
    pids = agent_pids(_agent_dir())
    assert len(pids) == 1 and pids[0] != int(out.strip())
    # Detached: its own session, not the app's child, output to its log file.
    assert os.getsid(pids[0]) == pids[0]
    assert "serving" in next(Path(_agent_dir()).glob("*.log")).read_text()


def test_two_processes_share_one_agent_and_one_store_writer(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    # Both hold their connection past the agent's start (it builds Presidio before it serves).
    procs = [_app(200, f"w{i}", db, 6.0) for i in range(2)]
    status = wait_for(
        lambda: (
            agent_sockets(_agent_dir())
            and len(agent_status(_agent_dir())["clients"]) == 2
            and agent_status(_agent_dir())
        ),
        60,
    )
    assert status, "two connected processes"
    assert sorted(c["service"] for c in status["clients"]) == ["app-w0", "app-w1"]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert len(agent_pids(_agent_dir())) == 1  # one agent for both, although both started at once
    assert count_spans(db, "name LIKE 'w0-%'") == 200 and count_spans(db, "name LIKE 'w1-%'") == 200


def test_different_exporter_settings_get_different_agents(tmp_path: Path) -> None:
    a = _app(5, "a", tmp_path / "a.db")
    b = _app(5, "b", tmp_path / "b.db")
    for p in (a, b):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    # Another local store file is another pipeline configuration: never silently the first agent's.
    assert len(agent_pids(_agent_dir())) == 2
    assert count_spans(tmp_path / "a.db") == 5 and count_spans(tmp_path / "b.db") == 5


def test_sigterm_flushes_what_the_agent_holds(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    # The pipeline's batch interval is a minute: only the SIGTERM drain can deliver these spans in time.
    p = _app(50, "late", db, CHATOBS_EXPORT_INTERVAL_MS="60000", CHATOBS_SHUTDOWN_TIMEOUT="20")
    p.communicate(timeout=120)
    [pid] = agent_pids(_agent_dir())
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not agent_pids(_agent_dir()), 30)
    assert count_spans(db) == 50
    assert not agent_sockets(_agent_dir())  # the socket is removed on the way out


def test_the_agent_exits_when_idle(tmp_path: Path) -> None:
    p = _app(1, "idle", tmp_path / "traces.db", CHATOBS_AGENT_IDLE_EXIT_S="1")
    p.communicate(timeout=120)
    assert agent_pids(_agent_dir())
    assert wait_for(lambda: not agent_pids(_agent_dir()), 20)


def test_connect_mode_never_starts_an_agent_and_counts_what_waits(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import chatobs
        from chatobs.core.stats import STATS
        rt = chatobs.init(agent_queue_size=16)
        for i in range(40):
            with chatobs.get_tracer().start_as_current_span(f"s{i}"):
                pass
        print(rt.pipeline.force_flush(500), STATS.dropped[("handoff", "queue_full")])
        chatobs.shutdown(timeout_s=0.5)
    """)
    out = subprocess.run(
        [PYTHON, "-c", code], env=subprocess_env(CHATOBS_AGENT="connect"), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "24"]  # 16 wait in the bounded queue, the rest are counted
    assert agent_pids(_agent_dir()) == []
    assert "did not deliver everything" in out.stderr


def test_a_user_run_agent_serves_connect_mode(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    env = subprocess_env(CHATOBS_LOCAL_DB=str(db))
    agent = subprocess.Popen(
        [PYTHON, "-m", "chatobs.tools.cli.main", "agent"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for((Path(_agent_dir()) / "agent.sock").exists, 60)
        p = _app(20, "sidecar", tmp_path / "ignored.db", CHATOBS_AGENT="connect")
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert count_spans(db) == 20  # the agent's settings decide where spans go
        status = subprocess.run(
            [PYTHON, "-m", "chatobs.tools.cli.main", "agent", "--status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert f"agent pid {agent.pid}" in status.stdout and "exporter local: ok" in status.stdout, status.stderr
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
    assert agent.returncode == 0


def test_doctor_shows_the_agent_and_its_connected_processes(tmp_path: Path) -> None:
    import json

    db = tmp_path / "traces.db"
    p = _app(10, "doc", db, 20)
    try:
        assert wait_for(lambda: agent_sockets(_agent_dir()) and agent_status(_agent_dir())["clients"], 60)
        env = subprocess_env(CHATOBS_LOCAL_DB=str(db))
        out = subprocess.run(
            [PYTHON, "-m", "chatobs.tools.cli.main", "doctor", "--no-check", "--json"],
            cwd=str(REPO),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        agent = json.loads(out.stdout)["agent"]
        assert agent["running"] is True, agent
        status = agent["status"]
        assert status["pid"] == agent_pids(_agent_dir())[0] and status["uptime_s"] > 0
        assert [c["service"] for c in status["clients"]] == ["app-doc"]
        assert [e["name"] for e in status["exporters"]] == ["local"] and "dropped" in status["stats"]
        assert status["masking"]["engine"] == "patterns"
        text = subprocess.run(
            [PYTHON, "-m", "chatobs.tools.cli.main", "doctor", "--no-check"],
            cwd=str(REPO),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert "connected processes: 1" in text and "exporter local: ok" in text
    finally:
        p.kill()
        p.wait(10)


def _nice_of_threads(pid: int) -> set[int]:
    # Field 19 of /proc/<pid>/task/<tid>/stat (after the ")" of the name: index 16): Linux keeps niceness per thread.
    return {
        int(task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[16])
        for task in Path(f"/proc/{pid}/task").iterdir()
    }


@pytest.mark.parametrize(("setting", "expected"), [(None, 10), ("0", os.getpriority(os.PRIO_PROCESS, 0))])
def test_the_agent_runs_at_a_lower_priority_than_the_apps(tmp_path: Path, setting: str | None, expected: int) -> None:
    env = {"CHATOBS_AGENT_NICE": setting} if setting is not None else {}
    p = _app(5, "nice", tmp_path / "traces.db", **env)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    pids = agent_pids(_agent_dir())
    assert len(pids) == 1
    # Every thread: the pipeline, the exporters and the connections' threads started after the agent lowered it.
    assert _nice_of_threads(pids[0]) == {expected}
