"""Settings: env parsing, aliases, clear errors naming the variable, and docs that cannot drift."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chatobs.config import ConfigError, load_settings
from chatobs.config.docs import render_markdown
from tests.conftest import REPO, subprocess_env


def test_defaults() -> None:
    s = load_settings()
    assert s.sample_rate == 1.0
    assert s.exporters is None
    assert "/health" in s.exclude_paths
    assert s.active


@pytest.mark.parametrize(
    ("env", "value", "expect"),
    [
        ("CHATOBS_SAMPLE_RATE", "abc", "CHATOBS_SAMPLE_RATE='abc'"),
        ("CHATOBS_SAMPLE_RATE", "1.5", "less than or equal to 1"),
        ("CHATOBS_EXPORTERS", "otlp,carrier-pigeon", "unknown exporter 'carrier-pigeon'"),
        ("CHATOBS_PII", "maybe", "CHATOBS_PII='maybe'"),
        ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER='sometimes'"),
        ("CHATOBS_INSTRUMENT", "openai,cohere", "unknown SDK 'cohere'"),
        (
            "CHATOBS_PRICING_FILE",
            "/nonexistent/prices.yaml",
            "CHATOBS_PRICING_FILE: file '/nonexistent/prices.yaml' does not exist",
        ),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: str, value: str, expect: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert expect in str(err.value)


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-very-secret")
    monkeypatch.setenv("LANGFUSE_FLUSH_AT", "zero")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "sk-lf-very-secret" not in str(err.value)
    assert "LANGFUSE_FLUSH_AT='zero'" in str(err.value)


def test_aliases_and_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_HOST", "http://127.0.0.1:3000")
    monkeypatch.setenv("MCP_TRACE_TOOL_IO", "true")
    monkeypatch.setenv("CHATOBS_EXCLUDE_PATHS", " /a , /b/* ,")
    monkeypatch.setenv("MCP_TRACE_SANITIZE_PII", "false")
    s = load_settings()
    assert s.langfuse_base_url == "http://127.0.0.1:3000"
    assert s.capture_tool_io is True
    assert s.exclude_paths == ["/a", "/b/*"]
    assert s.pii_mode == "off"


def test_init_overrides_win_and_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATOBS_SAMPLE_RATE", "0.5")
    assert load_settings(sample_rate=0.25).sample_rate == 0.25
    with pytest.raises(ConfigError, match="sample_rate"):
        load_settings(sample_rate=2)
    with pytest.raises(ConfigError, match="unknown setting 'sample_rat'"):
        load_settings(sample_rat=0.1)


def test_hash_secret_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATOBS_HASH_USER_IDS", "true")
    with pytest.raises(ConfigError, match="CHATOBS_HASH_SECRET"):
        load_settings()


def test_init_fails_on_bad_config_not_later(monkeypatch: pytest.MonkeyPatch) -> None:
    import chatobs

    monkeypatch.setenv("CHATOBS_SAMPLE_RATE", "abc")
    with pytest.raises(chatobs.ConfigError, match="CHATOBS_SAMPLE_RATE"):
        chatobs.init()


def test_docs_are_current() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert doc == render_markdown(), "docs/configuration.md is stale: run `make docs`"


def test_every_setting_documented_with_example() -> None:
    from chatobs.config import Settings

    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra or {}
        assert extra.get("doc"), name
        assert extra.get("example"), name


def test_import_chatobs_imports_no_optional_package() -> None:
    code = (
        "import sys, chatobs\n"
        "heavy = ['openai', 'anthropic', 'mcp', 'langfuse', 'opik', 'presidio_analyzer', 'spacy', 'genai_prices',"
        " 'pydantic_settings', 'opentelemetry.sdk']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
