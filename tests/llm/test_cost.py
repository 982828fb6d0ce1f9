"""The cost stage: pricing file (seed example), genai-prices, unknown models, malformed files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import chatobs
from chatobs.config import ConfigError
from chatobs.core import semconv as sc
from chatobs.processing.cost import CostStage, build, load_pricing_file

from .conftest import one_llm_span

pytestmark = pytest.mark.timeout(60)

SEED = """\
default: {prompt_token_cost: 0.0001, completion_token_cost: 0.0002}
models:
  gpt-4: {prompt_token_cost: 0.03, completion_token_cost: 0.06}
"""


def _call(model: str, provider: str, input_tokens: int, output_tokens: int, **usage: int) -> None:
    with chatobs.llm_call(provider=provider, model=model, messages="hi") as call:
        call.record(output="ok", usage={"input_tokens": input_tokens, "output_tokens": output_tokens, **usage})


def test_seed_pricing_example_costs_exactly_six_cents(make_capture, tmp_path: Path) -> None:
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text(SEED)
    cap = make_capture(pricing_file=str(pricing))
    _call("gpt-4", "openai", 1000, 500)
    a = one_llm_span(cap).attributes
    assert a[sc.COST_USD] == 0.06
    assert a[sc.COST_INPUT_USD] == 0.03 and a[sc.COST_OUTPUT_USD] == 0.03
    assert a[sc.GEN_AI_USAGE_COST] == 0.06
    assert a[sc.COST_SOURCE] == "pricing_file"


def test_pricing_file_read_from_mcp_variable_and_default_applies(make_capture, tmp_path: Path, monkeypatch) -> None:
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text(SEED)
    monkeypatch.setenv("MCP_TOKEN_PRICING_CONFIG", str(pricing))
    cap = make_capture()
    _call("my-local-model", "local", 2000, 1000)  # unknown to the file and to genai-prices: the file's default
    a = one_llm_span(cap).attributes
    assert a[sc.COST_USD] == pytest.approx(0.0004)
    assert a[sc.COST_SOURCE] == "pricing_file_default"


def test_genai_prices_model(make_capture) -> None:
    from genai_prices import Usage, calc_price

    cap = make_capture()
    _call("gpt-4o", "openai", 1000, 500, cache_read_input_tokens=200)
    a = one_llm_span(cap).attributes
    expected = calc_price(
        Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200), "gpt-4o", provider_id="openai"
    )
    assert a[sc.COST_USD] == pytest.approx(float(expected.total_price))
    assert a[sc.COST_INPUT_USD] == pytest.approx(float(expected.input_price))
    assert a[sc.COST_USD] > 0
    assert a[sc.COST_SOURCE] == "genai-prices"


def test_unknown_model_flagged_not_guessed(make_capture) -> None:
    cap = make_capture()
    _call("totally-made-up-model-9000", "local", 10, 10)
    a = one_llm_span(cap).attributes
    assert a[sc.COST_UNKNOWN_MODEL] is True
    assert sc.COST_USD not in a and sc.GEN_AI_USAGE_COST not in a


def test_file_matches_dated_versions_only(tmp_path: Path) -> None:
    pricing = tmp_path / "p.yaml"
    pricing.write_text(SEED)
    table = load_pricing_file(pricing)
    assert table.find("GPT-4") is not None
    assert table.find("gpt-4-0613") is not None
    assert table.find("gpt-4-2024-05-13") is not None
    assert table.find("gpt-4o") is None
    assert table.find("gpt-4-turbo") is None


def test_span_without_usage_or_model_untouched() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    tracer = provider.get_tracer("t")
    s1 = tracer.start_span("no usage", attributes={sc.GEN_AI_REQUEST_MODEL: "gpt-4"})
    s1.end()
    s2 = tracer.start_span("no model", attributes={sc.GEN_AI_USAGE_INPUT_TOKENS: 5})
    s2.end()
    stage = CostStage(None, use_genai_prices=False)
    out = stage.process([s1, s2])
    assert out[0] is s1 and out[1] is s2


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("models:\n  gpt-4: {prompt_token_cost: 0.03, completion_token_cost: [1\n", 3, "not valid YAML"),
        (
            "default: {prompt_token_cost: 0.1, completion_token_cost: 0.2}\nmodels:\n  gpt-4: {prompt_token_cost: cheap, completion_token_cost: 0.06}\n",
            3,
            "must be a number",
        ),
        ("models:\n  gpt-4: {prompt_token_cost: 0.03}\n", 2, "missing completion_token_cost"),
        ("defaults: {prompt_token_cost: 0.1, completion_token_cost: 0.2}\n", 1, "unknown key 'defaults'"),
        ("models:\n  gpt-4:\n    prompt_token_cost: 0.03\n    completion_token_cost: -1\n", 4, "must be a number >= 0"),
        ("- just\n- a list\n", 1, "expected a mapping"),
        (
            "models:\n  gpt-4: {prompt_token_cost: 0.03, completion_token_cost: 0.06, currency: EUR}\n",
            2,
            "unknown key 'currency'",
        ),
    ],
)
def test_malformed_pricing_file_fails_init_with_file_line_problem(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    pricing = tmp_path / "bad.yaml"
    pricing.write_text(text)
    with pytest.raises(ConfigError) as info:
        chatobs.init(pricing_file=str(pricing), exporters="none")
    message = str(info.value)
    assert "CHATOBS_PRICING_FILE" in message
    assert str(pricing) in message
    assert f"line {line}" in message
    assert problem in message


def test_empty_pricing_file_is_fine(tmp_path: Path) -> None:
    from chatobs.config import load_settings

    pricing = tmp_path / "empty.yaml"
    pricing.write_text("")
    stage = build(load_settings(pricing_file=str(pricing), exporters="none"))
    assert stage is not None and stage.table.models == {} and stage.table.default is None


# --- the cached path (resolution per model, genai-prices' arithmetic as an affine plan) equals the uncached one ----
_USAGES = [
    (0, 0, 0, 0),
    (1, 1, 0, 0),
    (500, 80, 0, 0),
    (1000, 500, 200, 0),
    (12_345, 678, 10_000, 2_000),
    (4096, 0, 0, 4096),
    (250_000, 1_000, 0, 0),
    (3, 7, 5, 0),
    (10, 10, -1, 0),
    (-5, 3, 0, 0),
]


def _genai_models() -> list[tuple[str, str | None]]:
    from genai_prices.data_snapshot import get_snapshot

    from chatobs.processing.cost import _PROVIDERS

    ours = {genai_id: name for name, genai_id in _PROVIDERS.items()}
    return [(model.id, ours.get(provider.id)) for provider in get_snapshot().providers for model in provider.models]


def _both(
    stage: CostStage, models: tuple[str, ...], provider: str | None, tokens: tuple[int, int, int, int]
) -> tuple[object, object]:
    def run(fn):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - both paths must fail alike too
            return type(exc)

    return run(lambda: stage._price_cached(models, provider, tokens)), run(
        lambda: stage._price(list(models), provider, tokens)
    )


def test_cached_prices_equal_genai_prices_for_every_model_it_knows() -> None:
    stage = CostStage(None)
    models = _genai_models()
    assert len(models) > 300
    planned = 0
    for model, provider in models:
        for tokens in _USAGES:
            cached, uncached = _both(stage, (model,), provider, tokens)
            assert cached == uncached, (model, provider, tokens)
            if isinstance(cached, tuple):
                assert [type(x) for x in cached] == [type(x) for x in uncached]
    planned = sum(1 for _, plan in stage._plans.values() if plan is not None)
    # Nearly every price is affine in the token counts: the fast path is the one normally taken.
    assert planned > 0.8 * len(stage._plans), (planned, len(stage._plans))


def test_cached_prices_equal_uncached_for_file_default_unknown_and_fallbacks(tmp_path: Path) -> None:
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text(SEED)
    stage = CostStage(load_pricing_file(pricing))
    cases = [
        (("gpt-4-0613",), "openai"),
        (("gpt-4o-2024-08-06", "gpt-4o"), "openai"),
        (("made-up", "gpt-4o-mini"), "openai"),
        (("claude-3-5-sonnet-20241022",), "anthropic"),
        (("claude-3-5-sonnet-20241022",), None),
        (("totally-unknown",), "local"),
        (("gpt-4o",), "azure.ai.openai"),
    ]
    for models, provider in cases:
        for tokens in _USAGES:
            cached, uncached = _both(stage, models, provider, tokens)
            assert cached == uncached, (models, provider, tokens)
    assert _both(stage, ("totally-unknown",), "local", (5, 5, 0, 0))[0][2] == "pricing_file_default"  # type: ignore[index]
    assert CostStage(None)._price_cached(("totally-unknown",), "local", (5, 5, 0, 0)) is None


def test_tiered_prices_are_left_to_genai_prices() -> None:
    from genai_prices.data_snapshot import get_snapshot
    from genai_prices.types import TieredPrices

    now = datetime.now(tz=UTC)
    tiered = [
        (m.id, p.id)
        for p in get_snapshot().providers
        if p.id == "google"
        for m in p.models
        if any(isinstance(v, TieredPrices) for v in vars(m.get_prices(now)).values())
    ]
    assert tiered, "genai-prices has tiered models (long-context Gemini); the plan must not be used for them"
    stage = CostStage(None)
    for model, _ in tiered[:3]:
        for tokens in [(100, 10, 0, 0), (300_000, 10, 0, 0), (1_500_000, 10, 0, 0)]:
            cached, uncached = _both(stage, (model,), "gcp.gemini", tokens)
            assert cached == uncached
            assert isinstance(cached, tuple) and cached[2] == "genai-prices"
    assert stage._plans and all(plan is None for _, plan in stage._plans.values())


def test_stage_skips_spans_without_a_model_before_reading_anything_else() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    plain = tracer.start_span("GET /", attributes={sc.HTTP_ROUTE: "/", sc.GEN_AI_USAGE_INPUT_TOKENS: 5})
    plain.end()
    llm = tracer.start_span(
        "chat",
        attributes={
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
        },
    )
    llm.end()
    stage = CostStage(None)
    out = stage.process([plain, llm, llm])
    assert out[0] is plain
    assert out[1].attributes[sc.COST_USD] == out[2].attributes[sc.COST_USD] > 0
    assert list(stage._resolved) == [(("gpt-4o",), "openai")]
