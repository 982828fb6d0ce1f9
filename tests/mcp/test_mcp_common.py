"""The adapter's small pure helpers: what they show about a server, and what they never show."""

from __future__ import annotations

from typing import ClassVar

from chatobs.core import semconv
from chatobs.recording.instrument.mcp._common import command_line, describe_server, target_from_url


def test_command_line_hides_values_of_secret_looking_flags() -> None:
    line = command_line(
        "/usr/bin/node",
        ["server.js", "--api-key", "sk-123", "--token=abc", "--port", "9000", "--Authorization", "Bearer x"],
    )
    assert line == "node server.js --api-key *** --token=*** --port 9000 --Authorization ***"
    assert "sk-123" not in line and "abc" not in line


def test_url_target_drops_userinfo_and_query() -> None:
    t = target_from_url("https://user:secret@tools.example.com/mcp?token=abc")
    assert t.label == "tools.example.com:443"
    attrs = t.attributes()
    assert attrs[semconv.SERVER_ADDRESS] == "tools.example.com" and attrs[semconv.SERVER_PORT] == 443
    assert attrs[semconv.NETWORK_TRANSPORT] == "tcp"
    assert "secret" not in repr(attrs) and "abc" not in repr(attrs)


def test_describe_server_understands_what_a_client_is_given() -> None:
    class Params:
        command = "python"
        args: ClassVar[list[str]] = ["-m", "tools", "--password", "hunter2"]

    stdio = describe_server(Params())
    assert stdio is not None and stdio.transport == "pipe" and "hunter2" not in (stdio.command or "")
    assert describe_server("http://127.0.0.1:8765/mcp").port == 8765  # type: ignore[union-attr]
    assert describe_server(object()) is None


def test_init_does_not_import_mcp_and_patches_it_when_the_app_does() -> None:
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    script = (
        "import sys, chatobs\n"
        "chatobs.init(exporters='none')\n"
        "assert 'mcp' not in sys.modules, 'init() imported mcp'\n"
        "from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher\n"
        "assert getattr(JSONRPCDispatcher._write, '_chatobs', False), 'not patched on import'\n"
        "chatobs.shutdown()\n"
        "assert not getattr(JSONRPCDispatcher._write, '_chatobs', False), 'not unpatched'\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_tool_io_is_the_one_json_text_cut_to_its_cap() -> None:
    """Tool arguments and results use core.json_text's encoder (pydantic models as their fields, not their repr),
    are cut to IO_MAX_CHARS, and what no encoder takes is left out rather than recorded as a repr."""
    from pydantic import BaseModel

    from chatobs.core.json_text import to_json
    from chatobs.recording.instrument.mcp._common import IO_MAX_CHARS, io_text

    class City(BaseModel):
        name: str
        country: str | None = None

    assert io_text({"city": City(name="Paris")}) == '{"city":{"name":"Paris"}}' == to_json({"city": City(name="Paris")})
    assert io_text({"q": "é"}) == '{"q":"é"}'
    assert len(io_text({"text": "x" * (2 * IO_MAX_CHARS)}) or "") == IO_MAX_CHARS
    loop: dict[str, object] = {}
    loop["self"] = loop
    assert io_text(loop) is None
