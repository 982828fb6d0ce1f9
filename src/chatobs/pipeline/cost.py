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
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import ReadableSpan

from .. import semconv
from .._guard import log_limited
from .spans import with_changes

if TYPE_CHECKING:
    from ..config import Settings

logger = logging.getLogger("chatobs")

__all__ = ["build", "CostStage", "PricingTable", "load_pricing_file"]

_THOUSAND = Decimal(1000)
_PRICE_KEYS = ("prompt_token_cost", "completion_token_cost")
_VERSION_SUFFIX = r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|-preview|@[\w.-]+)"
# gen_ai.provider.name -> genai-prices provider id
_PROVIDERS = {
    "openai": "openai", "azure.ai.openai": "azure", "anthropic": "anthropic", "aws.bedrock": "aws",
    "gcp.gemini": "google", "gcp.vertex_ai": "google", "gcp.gen_ai": "google", "google": "google",
    "mistral_ai": "mistral", "mistral": "mistral", "groq": "groq", "deepseek": "deepseek", "x_ai": "x-ai",
    "xai": "x-ai", "cohere": "cohere", "perplexity": "perplexity", "together": "together",
    "fireworks": "fireworks", "openrouter": "openrouter",
}
_CACHE_SIZE = 4096


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
            raise _config_error(path, mark.line + 1 if mark else None, f"not valid YAML: {exc.problem or exc}") from None
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
                    raise _config_error(path, value_node.start_mark.line + 1,
                                        "`models` must map model names to {prompt_token_cost, completion_token_cost}")
                for model_node, price_node in value_node.value:
                    model = loader.construct_object(model_node)
                    if not isinstance(model, (str, int, float)) or isinstance(model, bool) or str(model).strip() == "":
                        raise _config_error(path, model_node.start_mark.line + 1, "a model name must be a non-empty string")
                    table.models[str(model).strip().lower()] = _price(loader, path, price_node, f"models.{model}")
            else:
                raise _config_error(path, key_node.start_mark.line + 1,
                                    f"unknown key {key!r}; expected `default` and/or `models`")
        return table
    finally:
        loader.dispose()


def _price(loader: Any, path: Path, node: Any, where: str) -> Price:
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise _config_error(path, line, f"`{where}` must be a mapping {{prompt_token_cost: <USD per 1K>, completion_token_cost: <USD per 1K>}}")
    values: dict[str, Decimal] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if key not in _PRICE_KEYS:
            raise _config_error(path, key_node.start_mark.line + 1,
                                f"unknown key {key!r} in `{where}`; expected prompt_token_cost and completion_token_cost")
        value = loader.construct_object(value_node)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != value:
            raise _config_error(path, value_node.start_mark.line + 1,
                                f"`{where}.{key}` must be a number >= 0 (USD per 1K tokens), got {value!r}")
        values[key] = Decimal(str(value))
    missing = [k for k in _PRICE_KEYS if k not in values]
    if missing:
        raise _config_error(path, line, f"`{where}` is missing {' and '.join(missing)}")
    return Price(values["prompt_token_cost"], values["completion_token_cost"])


# --- the stage ----------------------------------------------------------------------------------------------------
def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


class CostStage:
    """Adds cost attributes to spans that carry a model and token usage."""

    name = "cost"
    pass_on_error = True  # a pricing bug must not drop spans (cost is not a privacy step)

    def __init__(self, table: PricingTable | None, use_genai_prices: bool = True) -> None:
        self.table = table or PricingTable()
        self._use_genai_prices = use_genai_prices
        self._calc_price: Any = None  # genai_prices.calc_price, imported on first need (on this background thread)
        self._usage_cls: Any = None
        self._cache: OrderedDict[tuple[Any, ...], tuple[Decimal, Decimal, str] | None] = OrderedDict()

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        out = []
        for span in spans:
            changes = None
            try:
                changes = self._cost(span)
            except Exception as exc:  # noqa: BLE001
                log_limited("cost", "chatobs: could not price a span: %s", exc)
            out.append(with_changes(span, attributes={**(span.attributes or {}), **changes}) if changes else span)
        return out

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        self._cache.clear()

    # ---------------------------------------------------------------------------------------------------------------
    def _cost(self, span: ReadableSpan) -> dict[str, Any] | None:
        attrs = span.attributes
        if not attrs or semconv.COST_USD in attrs:
            return None
        input_tokens = attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS, attrs.get("gen_ai.usage.prompt_tokens"))
        output_tokens = attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, attrs.get("gen_ai.usage.completion_tokens"))
        if input_tokens is None and output_tokens is None:
            return None
        models = [m for m in (attrs.get(semconv.GEN_AI_RESPONSE_MODEL), attrs.get(semconv.GEN_AI_REQUEST_MODEL))
                  if isinstance(m, str) and m]
        if not models:
            return None
        provider = attrs.get(semconv.GEN_AI_PROVIDER_NAME) or attrs.get(semconv.GEN_AI_SYSTEM)
        tokens = (_int(input_tokens), _int(output_tokens), _int(attrs.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
                  _int(attrs.get(semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)))
        key = (tuple(models), provider, tokens)
        cached = self._cache.get(key, False)
        if cached is False:
            cached = self._price(models, provider if isinstance(provider, str) else None, tokens)
            self._cache[key] = cached
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        if cached is None:
            return {semconv.COST_UNKNOWN_MODEL: True}
        input_usd, output_usd, source = cached
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
        except ImportError:
            logger.info("chatobs: genai-prices not installed (pip install 'chatobs[pricing]'); only the pricing file prices LLM calls")
            self._use_genai_prices = False
            return
        self._calc_price, self._usage_cls = calc_price, Usage

    def _price(self, models: list[str], provider: str | None, tokens: tuple[int, int, int, int]) -> tuple[Decimal, Decimal, str] | None:
        input_tokens, output_tokens, cache_read, cache_write = tokens
        for model in models:
            price = self.table.find(model)
            if price is not None:
                return (Decimal(input_tokens) / _THOUSAND * price.prompt,
                        Decimal(output_tokens) / _THOUSAND * price.completion, "pricing_file")
        if self._use_genai_prices and self._calc_price is None:
            self._load_genai_prices()
        if self._calc_price is not None:
            usage_kwargs: dict[str, int] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
            if cache_read:
                usage_kwargs["cache_read_tokens"] = cache_read
            if cache_write:
                usage_kwargs["cache_write_tokens"] = cache_write
            usage = self._usage_cls(**usage_kwargs)
            provider_id = _PROVIDERS.get(provider or "")
            for model in models:
                for pid in ((provider_id, None) if provider_id else (None,)):
                    try:
                        calc = self._calc_price(usage, model, provider_id=pid)
                    except LookupError:
                        continue
                    return Decimal(calc.input_price), Decimal(calc.output_price), "genai-prices"
        if self.table.default is not None:
            price = self.table.default
            return (Decimal(input_tokens) / _THOUSAND * price.prompt,
                    Decimal(output_tokens) / _THOUSAND * price.completion, "pricing_file_default")
        return None


def build(settings: "Settings") -> CostStage | None:
    table = load_pricing_file(settings.pricing_file) if settings.pricing_file else None
    return CostStage(table, use_genai_prices=importlib.util.find_spec("genai_prices") is not None)
