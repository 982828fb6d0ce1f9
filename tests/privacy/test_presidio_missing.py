"""Without Presidio: ``init()`` says at start, in one line, that masking cannot run, what happens to content and how
to fix it; ``chatobs doctor`` reports a failure.

Presidio is installed in this venv, so the child processes get a ``sitecustomize`` that makes ``presidio_analyzer``
unimportable (for them and for the masking worker they start, which inherits PYTHONPATH): it stands in for an
environment where the package is not installed, which this machine cannot otherwise provide next to the other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import subprocess_env

pytestmark = pytest.mark.timeout(180)

_BLOCKER = """
import sys

class _NoPresidio:
    def find_spec(self, name, path=None, target=None):
        if name == "presidio_analyzer" or name.startswith("presidio_analyzer."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoPresidio())
"""

_APP = """
import json, logging, sys
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import chatobs
from chatobs.runtime.wiring import shutdown

logging.basicConfig(level=logging.INFO, format="LOG %(levelname)s %(message)s")
memory = InMemorySpanExporter()
chatobs.init([memory], exporters="none")
with trace.get_tracer("app").start_as_current_span("turn", attributes={"chatobs.input": "mail ann@example.com"}):
    pass
shutdown(timeout_s=30)
print(json.dumps([dict(s.attributes) for s in memory.get_finished_spans()]))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(_BLOCKER)
    env = subprocess_env(**extra)
    env["PYTHONPATH"] = f"{tmp_path}:{env['PYTHONPATH']}"
    return env


def test_blocker_really_hides_presidio(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import presidio_analyzer"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode != 0 and "No module named 'presidio_analyzer'" in out.stderr


def test_init_says_masking_cannot_run_and_content_fails_closed(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _APP], env=_env(tmp_path), capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    log = out.stderr.splitlines()
    started = next(i for i, line in enumerate(log) if ": exporters " in line)  # init()'s own start-up line
    lines = [line for line in log[: started + 1] if "presidio" in line.lower()]
    assert len(lines) == 1, out.stderr  # said once, at init, before any span
    [line] = lines
    assert line.startswith("LOG WARNING chatobs: PII masking cannot run: presidio-analyzer is not installed"), line
    assert "removed from every span" in line and "fails closed" in line
    assert "pip install 'chatobs[presidio]'" in line and "CHATOBS_PII=off" in line
    # What the line says is what happens: the content is removed, never exported unmasked.
    [span] = json.loads(out.stdout.splitlines()[-1])
    assert span["chatobs.input"].startswith("<chatobs: content removed, masking ")
    assert "ann@example.com" not in json.dumps(span)


def test_init_is_quiet_with_masking_off(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _APP],
        env=_env(tmp_path, CHATOBS_PII="off"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "presidio" not in out.stderr.lower()


@pytest.mark.parametrize("args", [["doctor"], ["doctor", "--no-check"]])
def test_doctor_reports_masking_failure(tmp_path: Path, args: list[str]) -> None:
    code = "import sys; from chatobs.tools.cli.main import main; sys.exit(main(sys.argv[1:]))"
    env = _env(tmp_path, CHATOBS_EXPORTERS="none")
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Masking (CHATOBS_PII=patterns" in out.stdout
    assert "FAILED: PII masking cannot run: presidio-analyzer is not installed" in out.stdout
    assert "pip install 'chatobs[presidio]'" in out.stdout

    report = json.loads(
        subprocess.run(
            [sys.executable, "-c", code, *args, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
    )
    assert report["ok"] is False and report["masking"]["ok"] is False


def test_doctor_masking_ok_with_presidio(tmp_path: Path) -> None:
    code = "import sys; from chatobs.tools.cli.main import main; sys.exit(main(['doctor', '--json']))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(CHATOBS_EXPORTERS="none"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["masking"]["ok"] is True, out.stdout
    assert "<EMAIL_ADDRESS>" in report["masking"]["detail"]
