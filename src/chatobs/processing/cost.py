"""Cost stage of the background pipeline: USD cost of every LLM span, never computed on the request path.

Prices, in order of precedence:

1. the pricing file (``CHATOBS_PRICING_FILE``, also read from ``MCP_TOKEN_PRICING_CONFIG``), prices per 1K tokens::

       default: {prompt_token_cost: 0.0001, completion_token_cost: 0.0002}
       models:
         gpt-4: {prompt_token_cost: 0.03, completion_token_cost: 0.06}

   A model matches a ``models:`` key exactly (case-insensitively) or as that key plus a date/version suffix
   (``gpt-4-0613``, ``claude-3-5-haiku-20241022``, ``...-latest``);
2. ``genai-prices`` (the maintained price table of Pydantic; the ``pricing`` extra), which also prices cache reads
   and writes;
3. the file's ``default:`` prices.

A model none of them knows gets no cost and ``chatobs.cost.unknown_model=true`` -- never a guess. The cost goes on the
span as ``chatobs.cost.usd`` / ``chatobs.cost.input_usd`` / ``chatobs.cost.output_usd`` and ``gen_ai.usage.cost`` (read by
Langfuse's and Opik's OTLP ingestion), with ``chatobs.cost.source`` saying where the price came from.
A malformed pricing file makes ``build`` (thus ``chatobs.init()``) raise ``ConfigError`` naming the file, line and
problem.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from ..core import semconv
from ..core.guard import log_limited
from ..core.spans import attributes_of, with_changes

if TYPE_CHECKING:
    from ..config import Settings

logger = logging.getLogger("chatobs")

__all__ = ["CostStage", "PricingTable", "build", "load_pricing_file"]

_THOUSAND = Decimal(1000)
_PRICE_KEYS = ("prompt_token_cost", "completion_token_cost")
_VERSION_SUFFIX = r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|-preview|@[\w.-]+)"
# gen_ai.provider.name -> genai-prices provider id
_PROVIDERS = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "mistral_ai": "mistral",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
}
_CACHE_SIZE = 4096  # entries of each cache below; cleared when full
_CACHED_MODELS_MAX_CHARS = 512  # longer model names (bogus values) are priced uncached, so an entry stays small


@dataclass(frozen=True, slots=True)
class Price:
    prompt: Decimal  # USD per 1K input tokens
    completion: Decimal  # USD per 1K output tokens


@dataclass(slots=True)
class PricingTable:
    models: dict[str, Price] = field(default_factory=dict)  # lower-cased model name -> price
    default: Price | None = None

    def find(self, model: str) -> Price | None:
        key = model.lower()
        price = self.models.get(key)
        if price is not None:
            return price
        for name, candidate in self.models.items():
            if key.startswith(name) and re.fullmatch(re.escape(name) + _VERSION_SUFFIX, key):
                return candidate
        return None


# --- the pricing file -----------------------------------------------------------------------------------------------
def _config_error(path: Path, line: int | None, problem: str) -> Exception:
    from ..config import ConfigError, env_name

    where = f", line {line}" if line is not None else ""
    return ConfigError(f"{env_name('pricing_file')}: {path}{where}: {problem}")


def load_pricing_file(path: Path) -> PricingTable:
    """Read and validate the pricing file; ``ConfigError`` (file, line, problem) when it is malformed."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _config_error(path, None, f"cannot read the file ({exc.strerror or exc})") from None
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise _config_error(
                path, mark.line + 1 if mark else None, f"not valid YAML: {exc.problem or exc}"
            ) from None
        except yaml.YAMLError as exc:
            raise _config_error(path, None, f"not valid YAML: {exc}") from None
        table = PricingTable()
        if root is None:
            return table
        if not isinstance(root, yaml.MappingNode):
            raise _config_error(path, root.start_mark.line + 1, "expected a mapping with keys `default` and `models`")
        for key_node, value_node in root.value:
            key = loader.construct_object(key_node)
            if key == "default":
                table.default = _price(loader, path, value_node, "default")
            elif key == "models":
                if isinstance(value_node, yaml.ScalarNode) and loader.construct_object(value_node) is None:
                    continue
                if not isinstance(value_node, yaml.MappingNode):
                    raise _config_error(
                        path,
                        value_node.start_mark.line + 1,
                        "`models` must map model names to {prompt_token_cost, completion_token_cost}",
                    )
                for model_node, price_node in value_node.value:
                    model = loader.construct_object(model_node)
                    if not isinstance(model, (str, int, float)) or isinstance(model, bool) or str(model).strip() == "":
                        raise _config_error(
                            path, model_node.start_mark.line + 1, "a model name must be a non-empty string"
                        )
                    table.models[str(model).strip().lower()] = _price(loader, path, price_node, f"models.{model}")
            else:
                raise _config_error(
                    path, key_node.start_mark.line + 1, f"unknown key {key!r}; expected `default` and/or `models`"
                )
        return table
    finally:
        loader.dispose()


def _price(loader: Any, path: Path, node: Any, where: str) -> Price:
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise _config_error(
            path,
            line,
            f"`{where}` must be a mapping {{prompt_token_cost: <USD per 1K>, completion_token_cost: <USD per 1K>}}",
        )
    values: dict[str, Decimal] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key not in _PRICE_KEYS:
            raise _config_error(
                path,
                key_node.start_mark.line + 1,
                f"unknown key {key!r} in `{where}`; expected prompt_token_cost and completion_token_cost",
            )
        value = loader.construct_object(value_node)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != value:
            raise _config_error(
                path,
                value_node.start_mark.line + 1,
                f"`{where}.{key}` must be a number >= 0 (USD per 1K tokens), got {value!r}",
            )
        values[key] = Decimal(str(value))
    missing = [k for k in _PRICE_KEYS if k not in values]
    if missing:
        raise _config_error(path, line, f"`{where}` is missing {' and '.join(missing)}")
    return Price(values["prompt_token_cost"], values["completion_token_cost"])


# --- the stage ----------------------------------------------------------------------------------------------------
def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


_Tokens = tuple[int, int, int, int]  # input, output, cache read, cache write
_Costed = tuple[Decimal, Decimal, str]  # input USD, output USD, source
# Where the price of a (models, provider) pair comes from: ("file" | "default", Price) or ("genai", model, provider)
_Resolution = tuple[Any, ...] | None
_MAX_PLAN_TOKENS = (
    100_000_000  # beyond this the plan's Decimal arithmetic is not checked: genai-prices itself prices it
)


@dataclass(frozen=True, slots=True)
class _Plan:
    """genai-prices' cost of one model price, reduced to the affine function of the token counts it is.

    ``ModelPrice.calc_price`` re-derives the same usage decomposition on every call (~120 us); the plan is worked out
    once per model price by asking genai-prices itself at a few token counts, and checked against it before use. Its
    Decimal arithmetic is exact, so its figures equal genai-prices' to the last digit.
    """

    input_base: Decimal  # per-request prices
    output_base: Decimal
    input_per_token: tuple[Decimal, Decimal, Decimal, Decimal]  # by input, output, cache read, cache write token
    output_per_token: tuple[Decimal, Decimal, Decimal, Decimal]

    def cost(self, tokens: _Tokens) -> tuple[Decimal, Decimal]:
        n_in, n_out, n_read, n_write = tokens
        i0, i1, i2, i3 = self.input_per_token
        o0, o1, o2, o3 = self.output_per_token
        return (
            self.input_base + i0 * n_in + i1 * n_out + i2 * n_read + i3 * n_write,
            self.output_base + o0 * n_in + o1 * n_out + o2 * n_read + o3 * n_write,
        )


def _in_plan_domain(tokens: _Tokens) -> bool:
    """Token counts for which the plan is exact: genai-prices rejects cache tokens exceeding the input tokens."""
    n_in, n_out, n_read, n_write = tokens
    return (
        0 <= n_out <= _MAX_PLAN_TOKENS and n_read >= 0 and n_write >= 0 and n_read + n_write <= n_in <= _MAX_PLAN_TOKENS
    )


class CostStage:
    """Adds cost attributes to spans that carry a model and token usage."""

    name = "cost"
    pass_on_error = True  # a pricing bug must not drop spans (cost is not a privacy step)

    def __init__(self, table: PricingTable | None, use_genai_prices: bool = True) -> None:
        self.table = table or PricingTable()
        self._use_genai_prices = use_genai_prices
        self._calc_price: Any = None  # genai_prices.calc_price, imported on first need (on this background thread)
        self._usage_cls: Any = None
        self._get_snapshot: Any = None
        self._tiered_cls: Any = None
        self._snapshot: Any = None  # genai-prices' price data the caches below were filled from
        # Bounded by clearing when full (_CACHE_SIZE entries each): a handful of models is the usual working set.
        self._resolved: dict[tuple[Any, ...], _Resolution] = {}
        self._plans: dict[int, tuple[Any, _Plan | None]] = {}

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        if self._get_snapshot is not None and self._get_snapshot() is not self._snapshot:
            self._clear()  # genai-prices loaded newer prices: what was resolved from the old ones is stale
        out = []
        for span in spans:
            changes = None
            try:
                changes = self._cost(span)
            except Exception as exc:  # noqa: BLE001
                log_limited("cost", "chatobs: could not price a span: %s", exc)
            out.append(with_changes(span, attributes={**attributes_of(span), **changes}) if changes else span)
        return out

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._resolved.clear()
        self._plans.clear()
        self._snapshot = self._get_snapshot() if self._get_snapshot is not None else None

    # ---------------------------------------------------------------------------------------------------------------
    def _cost(self, span: ReadableSpan) -> dict[str, Any] | None:
        attrs = attributes_of(span)
        response_model = attrs.get(semconv.GEN_AI_RESPONSE_MODEL)
        request_model = attrs.get(semconv.GEN_AI_REQUEST_MODEL)
        if response_model is None and request_model is None:
            return None  # most spans of a turn (the request, the framework's, MCP) leave here
        if semconv.COST_USD in attrs:
            return None
        input_tokens = attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS, attrs.get("gen_ai.usage.prompt_tokens"))
        output_tokens = attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, attrs.get("gen_ai.usage.completion_tokens"))
        if input_tokens is None and output_tokens is None:
            return None
        models = tuple(m for m in (response_model, request_model) if isinstance(m, str) and m)
        if not models:
            return None
        provider = attrs.get(semconv.GEN_AI_PROVIDER_NAME) or attrs.get(semconv.GEN_AI_SYSTEM)
        tokens = (
            _int(input_tokens),
            _int(output_tokens),
            _int(attrs.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
            _int(attrs.get(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
        )
        costed = self._price_cached(models, provider if isinstance(provider, str) else None, tokens)
        if costed is None:
            return {semconv.COST_UNKNOWN_MODEL: True}
        input_usd, output_usd, source = costed
        total = float(input_usd + output_usd)
        return {
            semconv.COST_USD: total,
            semconv.COST_INPUT_USD: float(input_usd),
            semconv.COST_OUTPUT_USD: float(output_usd),
            semconv.GEN_AI_USAGE_COST: total,
            semconv.COST_SOURCE: source,
        }

    def _load_genai_prices(self) -> None:
        # Importing genai-prices takes a second or more (its price data): done here, off the app's startup path.
        try:
            from genai_prices import Usage, calc_price
            from genai_prices.data_snapshot import get_snapshot
            from genai_prices.types import TieredPrices
        except ImportError:
            logger.info(
                "chatobs: genai-prices not installed (pip install 'chatobs[pricing]'); only the pricing file prices LLM calls"
            )
            self._use_genai_prices = False
            return
        self._calc_price, self._usage_cls = calc_price, Usage
        self._get_snapshot, self._tiered_cls = get_snapshot, TieredPrices
        self._snapshot = get_snapshot()

    # --- the cached path: where the price comes from is worked out once per (models, provider) ---------------------
    def _price_cached(self, models: tuple[str, ...], provider: str | None, tokens: _Tokens) -> _Costed | None:
        if min(tokens) < 0 or sum(map(len, models)) > _CACHED_MODELS_MAX_CHARS:
            return self._price(list(models), provider, tokens)  # bogus counts: fail (or not) exactly as it does
        key = (models, provider)
        try:
            resolution = self._resolved[key]
        except KeyError:
            resolution = self._resolve(models, provider)
            if len(self._resolved) >= _CACHE_SIZE:
                self._resolved.clear()
            self._resolved[key] = resolution
        if resolution is None:
            return None
        kind = resolution[0]
        if kind == "genai":
            costed = self._genai_cost(resolution[1], resolution[2], tokens)
            if costed is not None:
                return costed
            # genai-prices itself, exactly as the uncached path asks it (and fails as it fails)
            return self._price(list(models), provider, tokens)
        price = resolution[1]
        return (
            Decimal(tokens[0]) / _THOUSAND * price.prompt,
            Decimal(tokens[1]) / _THOUSAND * price.completion,
            "pricing_file" if kind == "file" else "pricing_file_default",
        )

    def _resolve(self, models: tuple[str, ...], provider: str | None) -> _Resolution:
        """The same search as :meth:`_price`, without the arithmetic: pricing file, then genai-prices, then default."""
        for model in models:
            price = self.table.find(model)
            if price is not None:
                return ("file", price)
        if self._use_genai_prices and self._calc_price is None:
            self._load_genai_prices()
        if self._get_snapshot is not None:
            snapshot = self._get_snapshot()
            provider_id = _PROVIDERS.get(provider or "")
            for model in models:
                for pid in (provider_id, None) if provider_id else (None,):
                    try:
                        found_provider, model_info = snapshot.find_provider_model(model, None, pid, None)
                    except LookupError:
                        continue
                    return ("genai", model_info, found_provider)
        if self.table.default is not None:
            return ("default", self.table.default)
        return None

    def _genai_cost(self, model_info: Any, provider: Any, tokens: _Tokens) -> _Costed | None:
        """The plan's figures, or ``None`` when the plan does not apply (then genai-prices is asked directly)."""
        if not _in_plan_domain(tokens):
            return None
        now = datetime.now(tz=UTC)
        model_price = model_info.get_prices(now)  # prices can change with the date or the time of day
        entry = self._plans.get(id(model_price))
        if entry is not None and entry[0] is model_price:
            plan = entry[1]
        else:
            plan = self._make_plan(model_info, provider, model_price, now)
            if len(self._plans) >= _CACHE_SIZE:
                self._plans.clear()
            # The model price is held with its plan, so its id() cannot be reused by another object meanwhile.
            self._plans[id(model_price)] = (model_price, plan)
        if plan is None:
            return None
        input_usd, output_usd = plan.cost(tokens)
        return input_usd, output_usd, "genai-prices"

    def _genai_calc(self, model_info: Any, provider: Any, tokens: _Tokens, now: datetime) -> tuple[Decimal, Decimal]:
        calc = model_info.calc_price(self._usage(tokens), provider, genai_request_timestamp=now)
        return Decimal(calc.input_price), Decimal(calc.output_price)

    def _make_plan(self, model_info: Any, provider: Any, model_price: Any, now: datetime) -> _Plan | None:
        try:
            if any(isinstance(v, self._tiered_cls) for v in vars(model_price).values()):
                return None  # the price per token depends on the number of tokens: not affine
            m = 1_000_000
            base = self._genai_calc(model_info, provider, (0, 0, 0, 0), now)
            inp = self._genai_calc(model_info, provider, (m, 0, 0, 0), now)
            out = self._genai_calc(model_info, provider, (0, m, 0, 0), now)
            read = self._genai_calc(model_info, provider, (m, 0, m, 0), now)
            write = self._genai_calc(model_info, provider, (m, 0, 0, m), now)
            per_token = [
                tuple((probe[i] - ref[i]) / m for probe, ref in ((inp, base), (out, base), (read, inp), (write, inp)))
                for i in (0, 1)
            ]
            plan = _Plan(base[0], base[1], per_token[0], per_token[1])  # type: ignore[arg-type]
            # Trust, but verify: a price shape the plan does not capture is priced by genai-prices call by call.
            for sample in (
                (1234, 567, 0, 0),
                (10_007, 3, 4_001, 0),
                (5_003, 9, 1_000, 2_001),
                (7, 0, 0, 7),
                (99_999_999, 77_777_777, 3, 5),
            ):
                if plan.cost(sample) != self._genai_calc(model_info, provider, sample, now):
                    return None
            return plan
        except Exception:  # noqa: BLE001 - an odd price shape: genai-prices prices every call itself
            return None

    def _usage(self, tokens: _Tokens) -> Any:
        input_tokens, output_tokens, cache_read, cache_write = tokens
        usage_kwargs: dict[str, int] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        if cache_read:
            usage_kwargs["cache_read_tokens"] = cache_read
        if cache_write:
            usage_kwargs["cache_write_tokens"] = cache_write
        return self._usage_cls(**usage_kwargs)

    # --- the uncached path: the reference the cached one must equal, and its fallback -------------------------------
    def _price(self, models: list[str], provider: str | None, tokens: _Tokens) -> _Costed | None:
        input_tokens, output_tokens, _cache_read, _cache_write = tokens
        for model in models:
            price = self.table.find(model)
            if price is not None:
                return (
                    Decimal(input_tokens) / _THOUSAND * price.prompt,
                    Decimal(output_tokens) / _THOUSAND * price.completion,
                    "pricing_file",
                )
        if self._use_genai_prices and self._calc_price is None:
            self._load_genai_prices()
        if self._calc_price is not None:
            usage = self._usage(tokens)
            provider_id = _PROVIDERS.get(provider or "")
            for model in models:
                for pid in (provider_id, None) if provider_id else (None,):
                    try:
                        calc = self._calc_price(usage, model, provider_id=pid)
                    except LookupError:
                        continue
                    return Decimal(calc.input_price), Decimal(calc.output_price), "genai-prices"
        if self.table.default is not None:
            price = self.table.default
            return (
                Decimal(input_tokens) / _THOUSAND * price.prompt,
                Decimal(output_tokens) / _THOUSAND * price.completion,
                "pricing_file_default",
            )
        return None


def build(settings: Settings) -> CostStage | None:
    table = load_pricing_file(settings.pricing_file) if settings.pricing_file else None
    return CostStage(table, use_genai_prices=importlib.util.find_spec("genai_prices") is not None)
