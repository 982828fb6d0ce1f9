"""``init()`` does not import the LLM SDKs; they are patched when the app imports them (in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import sys
import chatobs
chatobs.init(exporters="none")
assert "openai" not in sys.modules and "anthropic" not in sys.modules, "init() imported an SDK"
import openai, anthropic
from openai._base_client import SyncAPIClient, AsyncAPIClient
import anthropic._base_client as abc
assert hasattr(SyncAPIClient.request, "_chatobs_original") and hasattr(AsyncAPIClient.request, "_chatobs_original")
assert hasattr(abc.SyncAPIClient.request, "_chatobs_original")
chatobs.shutdown()
assert not hasattr(SyncAPIClient.request, "_chatobs_original"), "not unpatched"
assert not hasattr(abc.SyncAPIClient.request, "_chatobs_original")
print("ok")
"""


def test_sdks_patched_on_import_not_by_init() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=subprocess_env(), capture_output=True, text=True, timeout=50, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
