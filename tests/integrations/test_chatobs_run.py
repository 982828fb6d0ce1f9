"""``chatobs run COMMAND``: chatobs starts in the app's process right after the app's module is imported, and in no
other Python process of the command. The real Open WebUI is too large for this suite (``make e2e`` runs it with
``chatobs run open-webui serve``); here a stand-in ``open_webui.main`` holding a real FastAPI app plays its part."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

pytestmark = pytest.mark.timeout(60)

PROBE = """
import json, sys
report = {"chatobs_before": "chatobs" in sys.modules}
if {app!r}:
    import open_webui.main as m
    from chatobs.runtime import wiring as runtime
    report["initialised"] = runtime.settings_or_none() is not None
    report["middleware"] = [getattr(x.cls, "__name__", "") for x in m.app.user_middleware]
report["chained"] = getattr(sys.modules.get("sitecustomize"), "CHAINED", False)
print(json.dumps(report))
"""


def _run(tmp_path: Path, app: bool) -> dict[str, object]:
    pkg = tmp_path / "open_webui"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    other = tmp_path / "other_site"
    other.mkdir(exist_ok=True)
    (other / "sitecustomize.py").write_text("CHAINED = True\n")  # the environment's own sitecustomize still runs
    env = subprocess_env(CHATOBS_EXPORTERS="none", CHATOBS_AGENT="inprocess", CHATOBS_PII="off")
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{tmp_path}:{other}"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatobs.tools.cli.main",
            "run",
            sys.executable,
            "-c",
            PROBE.replace("{app!r}", repr(app)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_run_starts_chatobs_after_the_app_module(tmp_path: Path) -> None:
    report = _run(tmp_path, app=True)
    assert report["chatobs_before"] is False  # nothing of chatobs imported at start-up
    assert report["initialised"] is True
    assert report["middleware"][0] == "ChatObsMiddleware"  # outermost on Open WebUI's app
    assert report["chained"] is True


def test_run_leaves_other_processes_alone(tmp_path: Path) -> None:
    report = _run(tmp_path, app=False)
    assert report == {"chatobs_before": False, "chained": True}


def test_run_without_a_command_says_what_is_expected() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chatobs.tools.cli.main", "run"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2
    assert "expected a command" in out.stderr and "chatobs run open-webui serve" in out.stderr
