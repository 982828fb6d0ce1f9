"""Which exporters run and why: automatic choice from the keys that are set, explicit choice fails loudly."""

from __future__ import annotations

import logging
import sys

import pytest

import chatobs
from chatobs.config import ConfigError, load_settings
from chatobs.export import build_exporters, choose


def names(**kw) -> list[str]:  # type: ignore[no-untyped-def]
    return [n for n, _ in choose(load_settings(**kw))]


def test_auto_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert names() == ["local"]
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk")
    assert names() == ["langfuse"]
    monkeypatch.setenv("OPIK_URL_OVERRIDE", "http://127.0.0.1:5173/api")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert names() == ["langfuse", "opik", "otlp"]
    monkeypatch.setenv("LANGFUSE_ENABLED", "false")
    assert names() == ["opik", "otlp"]
    reasons = dict(choose(load_settings()))
    assert "OPIK_URL_OVERRIDE" in reasons["opik"] and "OTEL_EXPORTER_OTLP" in reasons["otlp"]


def test_explicit_choice_and_none() -> None:
    assert names(exporters="otlp,console,otlp") == ["otlp", "console"]
    assert names(exporters="none") == []
    with pytest.raises(ConfigError, match="unknown exporter 'kafka'"):
        load_settings(exporters="kafka")


def test_missing_package_explicit_vs_auto(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The langfuse package IS installed here; make it unimportable to see what a user without the extra gets.
    monkeypatch.setitem(sys.modules, "langfuse", None)
    monkeypatch.setitem(sys.modules, "langfuse._client", None)
    monkeypatch.setitem(sys.modules, "langfuse._client.span_processor", None)
    with pytest.raises(ConfigError, match=r"pip install 'chatobs\[langfuse\]'"):
        build_exporters(load_settings(exporters="langfuse", langfuse_public_key="pk", langfuse_secret_key="sk"))
    with caplog.at_level(logging.WARNING, logger="chatobs"):
        specs = build_exporters(load_settings(langfuse_public_key="pk", langfuse_secret_key="sk"))
    assert specs == [] and "skipped" in caplog.text


def test_auto_chosen_but_misconfigured_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chatobs"):
        rt = chatobs.init(
            langfuse_public_key="pk",
            langfuse_secret_key="sk",
            langfuse_base_url="ftp://nope",
            otlp_endpoint="http://127.0.0.1:9",
        )
    assert rt is not None and [s.name for s in rt.exporters] == ["otlp"]
    assert "langfuse" in caplog.text and "skipped" in caplog.text
    chatobs.shutdown()
    with pytest.raises(ConfigError, match="LANGFUSE_BASE_URL"):
        chatobs.init(
            exporters="langfuse", langfuse_public_key="pk", langfuse_secret_key="sk", langfuse_base_url="ftp://nope"
        )


def test_llm_backends_chat_only_by_default() -> None:
    specs = build_exporters(
        load_settings(
            exporters="langfuse,otlp",
            langfuse_public_key="pk",
            langfuse_secret_key="sk",
            otlp_endpoint="http://127.0.0.1:9",
        )
    )
    assert {s.name: s.chat_only for s in specs} == {"langfuse": True, "otlp": False}
    for s in specs:
        s.exporter.shutdown()
    specs = build_exporters(
        load_settings(
            exporters="langfuse", langfuse_public_key="pk", langfuse_secret_key="sk", llm_backends_all_spans=True
        )
    )
    assert specs[0].chat_only is False
    for s in specs:
        s.exporter.shutdown()
