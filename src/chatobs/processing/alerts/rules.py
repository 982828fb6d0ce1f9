"""Alerts stage: in-process alert rules evaluated on finished spans, each alert carrying the turn that fired it.

Rules come from the settings (``CHATOBS_SLOW_TOOL_MS`` always; ``CHATOBS_ALERT_*``) and from a YAML file
(``CHATOBS_ALERTS_FILE``, format in ``docs/metrics.md``). Windows are measured in span time (span end), so the
rules judge what happened when it happened, even when the pipeline runs a little behind. The stage runs after the cost
stage and before sampling: it sees every span, kept or not. Sinks: ``alert_sinks``.

Public API: :func:`on_alert` registers a Python callback.
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, insort
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry.sdk.trace import ReadableSpan

from ...config import ConfigError
from ...core import semconv, span_types
from ...core.guard import log_limited
from ...core.spans import attributes_of, owns_tool_call, span_id_hex, trace_id_hex
from ..metrics.labels import error_type, model_of, provider_of
from .sinks import Alert, AlertDispatcher, CallbackRunner, WebhookSender

if TYPE_CHECKING:
    from ...config import Settings

logger = logging.getLogger("chatobs")

__all__ = ["RULE_TYPES", "Alert", "AlertsStage", "build", "current", "load_rules", "on_alert", "rules_from_settings"]

_callbacks: list[Callable[[Alert], Any]] = []
_current: AlertsStage | None = None


def on_alert(fn: Callable[[Alert], Any]) -> Callable[[], None]:
    """Call ``fn(alert)`` for every alert sent (after the cooldown), on a chatobs thread. Returns an unsubscribe function.

    Works before or after ``chatobs.init()`` and survives re-initialisation. ``fn`` must not block for long: alerts
    queue behind it (bounded; the excess is dropped and counted).
    """
    _callbacks.append(fn)

    def remove() -> None:
        if fn in _callbacks:
            _callbacks.remove(fn)

    return remove


def current() -> AlertsStage | None:
    return _current


_UNSET_TARGET: Any = object()


def _span_time_s(span: ReadableSpan) -> float:
    return (span.end_time or span.start_time or 0) / 1e9


def _target(span: ReadableSpan, attrs: Mapping[str, Any]) -> str | None:
    """What the rules call a span: "tool" (the span that counts an MCP tools/call, see ``spans.owns_tool_call``),
    "llm", "request", "feedback" (a user's rating), or ``None`` (no rule looks at it)."""
    found = span_types.classify(attrs)
    if found == span_types.FEEDBACK:
        return "feedback"
    if found == span_types.MCP_TOOL:
        return "tool" if owns_tool_call(span, attrs) else None
    if found in span_types.LLM_TYPES:
        return "llm"
    if found == span_types.REQUEST:
        return "request"
    return None


class Facts:
    """What the rules need to know about one span, worked out once per span rather than once per rule."""

    __slots__ = ("_error", "attrs", "duration_ms", "span", "target", "time_s")

    def __init__(
        self, span: ReadableSpan, attrs: Mapping[str, Any] | None = None, target: str | None = _UNSET_TARGET
    ) -> None:
        self.span = span
        # The span's own dict (read, never changed): the SDK's attribute mapping is slow to read key by key.
        self.attrs: Mapping[str, Any] = attributes_of(span) if attrs is None else attrs
        self.target = _target(span, self.attrs) if target is _UNSET_TARGET else target
        end, start = span.end_time, span.start_time
        self.duration_ms = max(0.0, (end - start) / 1e6) if end is not None and start is not None else 0.0
        self.time_s = (end or start or 0) / 1e9
        self._error: Any = _UNSET

    @property
    def error(self) -> str | None:
        if self._error is _UNSET:
            self._error = error_type(self.span, self.attrs)
        return self._error


_UNSET = object()
Fired = Iterable[tuple[str, dict[str, str], dict[str, float], ReadableSpan]]


# --- rules ----------------------------------------------------------------------------------------------------------
class Rule:
    """A rule sees every span (``observe``) and may look again once per batch (``end_batch``)."""

    type: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def observe(self, f: Facts) -> Fired:
        return ()

    def end_batch(self) -> Fired:
        return ()


class SlowToolRule(Rule):
    """A tool call slower than ``threshold_ms`` (or marked ``chatobs.slow`` by the MCP instrumentation).

    One alert per call: only the span that owns the call is a "tool" target (``spans.owns_tool_call``)."""

    type = "slow_tool"

    def __init__(self, name: str, threshold_ms: float, use_slow_flag: bool = False) -> None:
        super().__init__(name)
        self.threshold_ms = threshold_ms
        self.use_slow_flag = use_slow_flag

    def observe(self, f: Facts) -> Fired:
        if f.target != "tool":
            return ()
        attrs, span, duration = f.attrs, f.span, f.duration_ms
        if duration < self.threshold_ms and not (self.use_slow_flag and attrs.get(semconv.SLOW) is True):
            return ()
        tool = str(attrs.get(semconv.GEN_AI_TOOL_NAME) or "")
        server = str(attrs.get(semconv.MCP_SERVER_NAME) or "")
        where = f" on {server}" if server else ""
        msg = f"tool {tool!r}{where} took {duration:.0f} ms (threshold {self.threshold_ms:.0f} ms)"
        return [
            (
                msg,
                {"tool": tool, "server": server},
                {"duration_ms": round(duration, 3), "threshold_ms": self.threshold_ms},
                span,
            )
        ]


class _Window:
    """Timestamped values over a sliding window of span time, bounded in length."""

    def __init__(self, window_s: float, maxlen: int = 10_000) -> None:
        self.window_s = window_s
        self.items: deque[tuple[float, float]] = deque(maxlen=maxlen)
        self.total = 0.0

    def add(self, t: float, value: float) -> None:
        if len(self.items) == self.items.maxlen:
            self.total -= self.items[0][1]
        self.items.append((t, value))
        self.total += value
        self.prune(t)

    def prune(self, now: float) -> None:
        edge = now - self.window_s
        while self.items and self.items[0][0] < edge:
            self.total -= self.items.popleft()[1]


class _SortedWindow(_Window):
    """A window that also keeps its values in order: the latency rule reads a percentile after every batch, and
    sorting the whole window each time cost more than the rest of the stage."""

    def __init__(self, window_s: float, maxlen: int = 10_000) -> None:
        super().__init__(window_s, maxlen)
        self.sorted: list[float] = []

    def add(self, t: float, value: float) -> None:
        if len(self.items) == self.items.maxlen:
            self._forget(self.items[0][1])  # the deque drops it on append
        insort(self.sorted, value)
        super().add(t, value)

    def prune(self, now: float) -> None:
        edge = now - self.window_s
        while self.items and self.items[0][0] < edge:
            value = self.items.popleft()[1]
            self.total -= value
            self._forget(value)

    def _forget(self, value: float) -> None:
        del self.sorted[bisect_left(self.sorted, value)]


class _Keyed:
    """Per-subject windows. Bounded: ``max_keys`` subjects of at most ``maxlen`` values each; a subject with nothing
    left in its window goes (so memory follows the subjects active in the window, not all ever seen), and the least
    recently used subject goes when there are too many."""

    def __init__(self, window_s: float, max_keys: int = 10_000, maxlen: int = 10_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self.maxlen = maxlen
        self.windows: OrderedDict[Any, _Window] = OrderedDict()

    def get(self, key: Any, now: float | None = None) -> _Window:
        if now is not None:
            self._expire(now)
        w = self.windows.get(key)
        if w is None:
            w = self.windows[key] = _Window(self.window_s, self.maxlen)
            if len(self.windows) > self.max_keys:
                self.windows.popitem(last=False)
        else:
            self.windows.move_to_end(key)
        return w

    def _expire(self, now: float) -> None:
        # Least recently used first: once one still holds a value inside the window, the later ones do too.
        edge = now - self.window_s
        windows = self.windows
        while windows:
            first = next(iter(windows.values()))
            if first.items and first.items[-1][0] >= edge:
                return
            windows.popitem(last=False)


class ErrorRateRule(Rule):
    """The share of failed LLM calls, tool calls or requests over the window above ``threshold``."""

    type = "error_rate"

    def __init__(
        self, name: str, target: str, threshold: float, window_s: float, min_count: int = 10, by: str | None = None
    ) -> None:
        super().__init__(name)
        self.target, self.threshold, self.window_s, self.min_count, self.by = target, threshold, window_s, min_count, by
        self._calls = _Keyed(window_s, max_keys=1000)

    def _subject(self, attrs: Mapping[str, Any]) -> dict[str, str]:
        subject = {"target": self.target}
        if self.by == "model":
            subject["model"] = model_of(attrs)
        elif self.by == "provider":
            subject["provider"] = provider_of(attrs)
        elif self.by == "tool":
            subject["tool"] = str(attrs.get(semconv.GEN_AI_TOOL_NAME) or "")
        elif self.by == "route":
            subject["route"] = str(attrs.get(semconv.HTTP_ROUTE) or attrs.get(semconv.ROUTE) or "")
        return subject

    def observe(self, f: Facts) -> Fired:
        if f.target != self.target:
            return ()
        subject = self._subject(f.attrs)
        failed = f.error is not None
        w = self._calls.get(tuple(sorted(subject.items())), f.time_s)
        w.add(f.time_s, 1.0 if failed else 0.0)
        calls = len(w.items)
        # Only a failure can push the rate up, so the alert always points at a failed turn.
        if not failed or calls < self.min_count:
            return ()
        rate = w.total / calls
        if rate <= self.threshold:
            return ()
        msg = f"{self.target} error rate {rate:.0%} over the last {self.window_s:.0f} s ({int(w.total)} of {calls}; threshold {self.threshold:.0%})"
        figures = {
            "error_rate": round(rate, 4),
            "errors": w.total,
            "calls": float(calls),
            "threshold": self.threshold,
            "window_s": self.window_s,
        }
        return [(msg, subject, figures, f.span)]


class BudgetRule(Rule):
    """LLM cost of one conversation, user or tenant over the window above ``max_usd``."""

    type = "budget"
    _ATTR: ClassVar[dict[str, str]] = {
        "conversation": semconv.GEN_AI_CONVERSATION_ID,
        "user": semconv.USER_ID,
        "tenant": semconv.TENANT_ID,
    }

    def __init__(self, name: str, by: str, max_usd: float, window_s: float) -> None:
        super().__init__(name)
        self.by, self.max_usd, self.window_s = by, max_usd, window_s
        self._spend = _Keyed(window_s, max_keys=10_000, maxlen=5_000)
        self.display: Callable[[str], str] = str  # user IDs: hashed when CHATOBS_HASH_USER_IDS=true

    def observe(self, f: Facts) -> Fired:
        if f.target != "llm":
            return ()
        cost = f.attrs.get(semconv.COST_USD)
        who = f.attrs.get(self._ATTR[self.by])
        if not who or not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost <= 0:
            return ()
        who = self.display(str(who)) if self.by == "user" else str(who)
        w = self._spend.get(who, f.time_s)
        w.add(f.time_s, float(cost))
        if w.total <= self.max_usd:
            return ()
        msg = f"{self.by} {who} spent ${w.total:.4f} in the last {_human(self.window_s)} (budget ${self.max_usd:.4f})"
        figures = {
            "cost_usd": round(w.total, 6),
            "budget_usd": self.max_usd,
            "window_s": self.window_s,
            "calls": float(len(w.items)),
        }
        return [(msg, {self.by: who}, figures, f.span)]


class SpikeRule(Rule):
    """Cost or tokens in the current window above ``factor`` x the average of the previous ``baseline_windows``."""

    type = "spike"

    def __init__(
        self,
        name: str,
        metric: str,
        factor: float,
        window_s: float,
        baseline_windows: int = 12,
        min_baseline_windows: int = 3,
        min_value: float = 0.0,
    ) -> None:
        super().__init__(name)
        self.metric, self.factor, self.window_s = metric, factor, window_s
        self.baseline_windows, self.min_baseline_windows, self.min_value = (
            baseline_windows,
            min_baseline_windows,
            min_value,
        )
        self._buckets: OrderedDict[int, float] = OrderedDict()  # bounded: baseline_windows + 2 windows
        self._first_bucket: int | None = None

    def _value(self, attrs: Mapping[str, Any]) -> float:
        if self.metric == "cost":
            v = attrs.get(semconv.COST_USD)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0.0
        total = 0.0
        for key in (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS):
            v = attrs.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                total += v
        return total

    def observe(self, f: Facts) -> Fired:
        if f.target != "llm":
            return ()
        value = self._value(f.attrs)
        if value <= 0:
            return ()
        bucket = int(f.time_s // self.window_s)
        if self._first_bucket is None:
            self._first_bucket = bucket
        self._buckets[bucket] = self._buckets.get(bucket, 0.0) + value
        while len(self._buckets) > self.baseline_windows + 2:
            self._buckets.popitem(last=False)
        # Windows without any LLM call count as zero once the rule has seen that far back.
        previous = range(max(self._first_bucket, bucket - self.baseline_windows), bucket)
        if len(previous) < self.min_baseline_windows:
            return ()
        baseline = sum(self._buckets.get(b, 0.0) for b in previous) / len(previous)
        now = self._buckets[bucket]
        if baseline <= 0 or now <= self.factor * baseline or now < self.min_value:
            return ()
        unit = "$" if self.metric == "cost" else ""
        msg = (
            f"{self.metric} spike: {unit}{now:.4g} in the current {_human(self.window_s)} window, "
            f"{now / baseline:.1f}x the baseline {unit}{baseline:.4g} (threshold {self.factor:g}x)"
        )
        figures = {
            "current": now,
            "baseline": baseline,
            "ratio": round(now / baseline, 3),
            "factor": self.factor,
            "window_s": self.window_s,
        }
        return [(msg, {"metric": self.metric}, figures, f.span)]


class LatencyRule(Rule):
    """The p-th percentile duration of LLM calls, tool calls or requests over the window above ``threshold_ms``."""

    type = "latency"

    def __init__(
        self, name: str, target: str, percentile: float, threshold_ms: float, window_s: float, min_count: int = 20
    ) -> None:
        super().__init__(name)
        self.target, self.percentile, self.threshold_ms, self.window_s, self.min_count = (
            target,
            percentile,
            threshold_ms,
            window_s,
            min_count,
        )
        self._window = _SortedWindow(window_s, maxlen=10_000)
        self._spans: deque[ReadableSpan] = deque(maxlen=64)  # recent slow spans: the evidence for the alert
        self._changed = False

    def observe(self, f: Facts) -> Fired:
        if f.target != self.target:
            return ()
        d = f.duration_ms
        self._window.add(f.time_s, d)
        self._changed = True
        if d > self.threshold_ms:
            self._spans.append(f.span)
        return ()

    def end_batch(self) -> Fired:
        # Sorting the window is the costly part: once per batch, not per span.
        if not self._changed:
            return ()
        self._changed = False
        values = self._window.sorted
        if len(values) < self.min_count or not self._spans:
            return ()
        rank = max(0, math.ceil(self.percentile / 100 * len(values)) - 1)
        p = values[rank]
        if p <= self.threshold_ms:
            return ()
        evidence = self._spans[-1]
        label = f"p{self.percentile:g}"
        msg = f"{self.target} {label} latency {p:.0f} ms over the last {_human(self.window_s)} (threshold {self.threshold_ms:.0f} ms, {len(values)} calls)"
        figures = {
            label + "_ms": round(p, 3),
            "threshold_ms": self.threshold_ms,
            "calls": float(len(values)),
            "window_s": self.window_s,
        }
        return [(msg, {"target": self.target, "percentile": label}, figures, evidence)]


# --- user feedback: the negative-feedback rule ------------------------------------------------------------------------
class NegativeFeedbackRule(Rule):
    """The share of negative user ratings (``chatobs.feedback``) over the window above ``threshold``. A rating's time
    is when it was given, whatever turn it rates; the alert points at the negative rating that pushed the share over
    (its trace is the rated turn's)."""

    type = "negative_feedback"

    def __init__(
        self, name: str, threshold: float, window_s: float = 3600.0, min_count: int = 10, rating: str | None = None
    ) -> None:
        super().__init__(name)
        self.threshold, self.window_s, self.min_count, self.rating = threshold, window_s, min_count, rating
        self._ratings: deque[tuple[float, bool]] = deque(maxlen=10_000)  # (time, negative); bounded
        self._negative = 0

    def _add(self, t: float, negative: bool) -> None:
        items = self._ratings
        if len(items) == items.maxlen:
            self._negative -= items[0][1]
        items.append((t, negative))
        self._negative += negative
        edge = t - self.window_s
        while items and items[0][0] < edge:
            self._negative -= items.popleft()[1]

    def observe(self, f: Facts) -> Fired:
        if f.target != "feedback":
            return ()
        if self.rating is not None and f.attrs.get(semconv.GEN_AI_EVALUATION_NAME) != self.rating:
            return ()
        negative = bool(f.attrs.get(semconv.FEEDBACK_NEGATIVE))
        self._add(f.time_s, negative)
        count = len(self._ratings)
        if not negative or count < self.min_count:
            return ()
        share = self._negative / count
        if share <= self.threshold:
            return ()
        msg = (
            f"negative feedback {share:.0%} over the last {self.window_s:.0f} s "
            f"({self._negative} of {count} ratings; threshold {self.threshold:.0%})"
        )
        figures = {
            "negative_share": round(share, 4),
            "negative": float(self._negative),
            "ratings": float(count),
            "threshold": self.threshold,
            "window_s": self.window_s,
        }
        return [(msg, {"target": "feedback", "rating": self.rating or "any"}, figures, f.span)]


# --- end of user feedback ---------------------------------------------------------------------------------------------
def _human(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


# --- rule definitions: settings and YAML ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Field:
    kind: type | tuple[type, ...]
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    required: bool = False


_TARGETS = ("llm", "tool", "request")
RULE_TYPES: dict[str, tuple[type[Rule], dict[str, _Field]]] = {
    "slow_tool": (SlowToolRule, {"threshold_ms": _Field((int, float), minimum=0, required=True)}),
    "error_rate": (
        ErrorRateRule,
        {
            "target": _Field(str, choices=_TARGETS, required=True),
            "threshold": _Field((int, float), minimum=0, required=True),
            "window_s": _Field((int, float), 300.0, minimum=1),
            "min_count": _Field(int, 10, minimum=1),
            "by": _Field(str, None, choices=("model", "provider", "tool", "route")),
        },
    ),
    "budget": (
        BudgetRule,
        {
            "by": _Field(str, choices=("conversation", "user", "tenant"), required=True),
            "max_usd": _Field((int, float), minimum=0, required=True),
            "window_s": _Field((int, float), 86400.0, minimum=1),
        },
    ),
    "spike": (
        SpikeRule,
        {
            "metric": _Field(str, choices=("cost", "tokens"), required=True),
            "factor": _Field((int, float), 3.0, minimum=1),
            "window_s": _Field((int, float), 300.0, minimum=1),
            "baseline_windows": _Field(int, 12, minimum=1),
            "min_baseline_windows": _Field(int, 3, minimum=1),
            "min_value": _Field((int, float), 0.0, minimum=0),
        },
    ),
    "negative_feedback": (
        NegativeFeedbackRule,
        {
            "threshold": _Field((int, float), minimum=0, required=True),
            "window_s": _Field((int, float), 3600.0, minimum=1),
            "min_count": _Field(int, 10, minimum=1),
            "rating": _Field(str, None),  # only ratings of this name (gen_ai.evaluation.name); default: all
        },
    ),
    "latency": (
        LatencyRule,
        {
            "target": _Field(str, choices=_TARGETS, required=True),
            "percentile": _Field((int, float), 95.0, minimum=1),
            "threshold_ms": _Field((int, float), minimum=0, required=True),
            "window_s": _Field((int, float), 300.0, minimum=1),
            "min_count": _Field(int, 20, minimum=1),
        },
    ),
}


def rules_from_settings(settings: Settings) -> list[Rule]:
    rules: list[Rule] = [SlowToolRule("slow_tool", settings.slow_tool_ms, use_slow_flag=True)]
    w = settings.alert_window_s
    if settings.alert_error_rate is not None:
        rules.append(ErrorRateRule("llm_error_rate", "llm", settings.alert_error_rate, w))
        rules.append(ErrorRateRule("tool_error_rate", "tool", settings.alert_error_rate, w))
    if settings.alert_budget_usd is not None:
        rules.append(
            BudgetRule(
                f"{settings.alert_budget_by}_budget",
                settings.alert_budget_by,
                settings.alert_budget_usd,
                settings.alert_budget_window_s,
            )
        )
    if settings.alert_spike_factor is not None:
        rules.append(SpikeRule("cost_spike", "cost", settings.alert_spike_factor, w))
        rules.append(SpikeRule("token_spike", "tokens", settings.alert_spike_factor, w))
    if settings.alert_latency_p95_ms is not None:
        rules.append(LatencyRule("llm_latency_p95", "llm", 95.0, settings.alert_latency_p95_ms, w))
    if settings.alert_negative_feedback is not None:
        rules.append(
            NegativeFeedbackRule(
                "negative_feedback",
                settings.alert_negative_feedback,
                settings.alert_negative_feedback_window_s,
                settings.alert_negative_feedback_min_count,
            )
        )
    return rules


def load_rules(path: Path | str) -> tuple[list[Rule], set[str]]:
    """Rules of a YAML alerts file, and the names of rules it disables. Raises ``ConfigError`` naming the problem."""
    import yaml

    where = f"CHATOBS_ALERTS_FILE={str(path)!r}"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: cannot read it as YAML ({type(exc).__name__}: {exc})") from None
    if data is None:
        return [], set()
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(f"{where}: expected a mapping with a `rules:` list (see docs/metrics.md)")
    rules: list[Rule] = []
    disabled: set[str] = set()
    names: set[str] = set()
    for i, raw in enumerate(data["rules"], start=1):
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: rule {i}: expected a mapping with `name` and `type`")
        spec = dict(raw)
        name = spec.pop("name", None)
        label = f"{where}: rule {i}" + (f" ({name!r})" if name else "")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{label}: `name` is required (a short unique string)")
        if name in names:
            raise ConfigError(f"{label}: duplicate rule name")
        names.add(name)
        enabled = spec.pop("enabled", True)
        if enabled is False:
            disabled.add(name)
            continue
        kind = spec.pop("type", None)
        if kind not in RULE_TYPES:
            raise ConfigError(f"{label}: unknown type {kind!r}; expected one of {', '.join(RULE_TYPES)}")
        cls, fields = RULE_TYPES[kind]
        unknown = sorted(set(spec) - set(fields))
        if unknown:
            raise ConfigError(f"{label}: unknown field {unknown[0]!r}; {kind} rules take {', '.join(fields)}")
        kwargs: dict[str, Any] = {}
        for fname, f in fields.items():
            if fname not in spec:
                if f.required:
                    raise ConfigError(f"{label}: `{fname}` is required for {kind} rules")
                kwargs[fname] = f.default
                continue
            value = spec[fname]
            if isinstance(value, bool) or not isinstance(value, f.kind):
                expected = "a number" if f.kind in ((int, float), int) else "a string"
                raise ConfigError(f"{label}: `{fname}`={value!r}: expected {expected}")
            if f.choices and value not in f.choices:
                raise ConfigError(f"{label}: `{fname}`={value!r}: expected one of {', '.join(f.choices)}")
            # minimum is set on number fields only; the isinstance narrows `value` for the type checker
            if f.minimum is not None and isinstance(value, int | float) and value < f.minimum:
                raise ConfigError(f"{label}: `{fname}`={value!r}: expected at least {f.minimum:g}")
            kwargs[fname] = value
        if kind in ("error_rate", "negative_feedback") and kwargs["threshold"] > 1:
            raise ConfigError(f"{label}: `threshold`={kwargs['threshold']!r}: expected a fraction in [0, 1]")
        if kind == "latency" and kwargs["percentile"] > 100:
            raise ConfigError(f"{label}: `percentile`={kwargs['percentile']!r}: expected a number in [1, 100]")
        rules.append(cls(name, **kwargs))
    return rules, disabled


# --- the stage ----------------------------------------------------------------------------------------------------
class AlertsStage:
    """Feeds every span to every rule; sends what fires through the dispatcher. Passes the batch on unchanged."""

    name = "alerts"
    pass_on_error = True

    def __init__(
        self,
        rules: list[Rule],
        dispatcher: AlertDispatcher,
        *,
        viewer_url: str | None = None,
        service: str | None = None,
    ) -> None:
        self.rules = rules
        self.dispatcher = dispatcher
        self._viewer = viewer_url.rstrip("/") if viewer_url else None
        self._service = service

    def process(self, spans: list[ReadableSpan]) -> list[ReadableSpan]:
        rules = self.rules
        for span in spans:
            attrs = attributes_of(span)
            target = _target(span, attrs)
            if target is None:
                continue  # every rule is about tools, LLM calls or requests: most spans leave here
            f = Facts(span, attrs, target)
            for rule in rules:
                try:
                    fired = rule.observe(f)
                    for item in fired:
                        self._emit(rule, *item)
                except Exception as exc:  # noqa: BLE001 - one rule failing must not stop the others
                    log_limited(
                        f"alert-rule-{rule.type}",
                        "chatobs: alert rule %r failed: %s: %s",
                        rule.name,
                        type(exc).__name__,
                        exc,
                    )
        for rule in self.rules:
            try:
                for item in rule.end_batch():
                    self._emit(rule, *item)
            except Exception as exc:  # noqa: BLE001
                log_limited(
                    f"alert-rule-{rule.type}",
                    "chatobs: alert rule %r failed: %s: %s",
                    rule.name,
                    type(exc).__name__,
                    exc,
                )
        return spans

    def _emit(
        self, rule: Rule, message: str, subject: dict[str, str], figures: dict[str, float], span: ReadableSpan
    ) -> None:
        trace_id = trace_id_hex(span)
        conversation = (span.attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID)
        self.dispatcher.emit(
            Alert(
                rule=rule.name,
                type=rule.type,
                message=message,
                subject=subject,
                figures=figures,
                trace_id=trace_id,
                span_id=span_id_hex(span),
                time=_span_time_s(span),
                viewer_url=f"{self._viewer}/#/t/{trace_id}" if self._viewer and trace_id else None,
                service=self._service,
                conversation_id=str(conversation) if conversation else None,
            )
        )

    def join(self, timeout_s: float = 5.0) -> bool:
        """Wait until the webhook and the callbacks have handled every alert sent so far (tests, demos)."""
        return self.dispatcher.join(timeout_s)

    def flush(self) -> list[ReadableSpan]:
        return []

    def shutdown(self) -> None:
        global _current
        if _current is self:
            _current = None
        self.dispatcher.shutdown(2.0)


def build(settings: Settings) -> AlertsStage | None:
    global _current
    if not settings.alerts:
        return None
    rules = rules_from_settings(settings)
    if settings.alerts_file is not None:
        extra, disabled = load_rules(settings.alerts_file)
        replaced = {r.name for r in extra} | disabled
        rules = [r for r in rules if r.name not in replaced] + extra
    from ...core.hashing import user_id_hasher
    from ..metrics import stage as metrics

    hasher = user_id_hasher(settings)
    for rule in rules:
        if isinstance(rule, BudgetRule):
            rule.display = hasher

    def count(alert: Alert) -> None:
        rec = metrics.current()
        if rec is not None:
            rec.count_alert(alert.rule, alert.type)

    webhook = None
    if settings.alert_webhook_url is not None:
        url = settings.alert_webhook_url.get_secret_value()
        if not url.startswith(("http://", "https://")):
            raise ConfigError("CHATOBS_ALERT_WEBHOOK_URL: expected an http:// or https:// URL")
        webhook = WebhookSender(
            url, timeout_s=settings.alert_webhook_timeout_s, max_per_minute=settings.alert_webhook_max_per_minute
        )
    dispatcher = AlertDispatcher(
        cooldown_s=settings.alert_cooldown_s,
        webhook=webhook,
        callbacks=CallbackRunner(lambda: list(_callbacks)),
        count=count,
    )
    stage = AlertsStage(rules, dispatcher, viewer_url=settings.viewer_url, service=settings.service_name)
    if _current is not None:
        _current.dispatcher.shutdown(0.5)
    _current = stage
    return stage
