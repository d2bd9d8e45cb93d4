from __future__ import annotations

import gc
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from hypothesis import HealthCheck, settings

import tencent_chat_robots._retry as retry_module
from tencent_chat_robots import RawResponse, TencentChat
from tencent_chat_robots._redact import live_secrets

SDKAPPID = 1400000000
SECRET_KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
ADMIN = "administrator"
BASE_URL = "https://adminapisgp.im.qcloud.com"

# `nox -s mutation` (``--hypothesis-profile=mutation``): the same examples for every
# mutant, and no deadline, as mutmut's trampolines slow every call of a mutated module.
settings.register_profile(
    "mutation",
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _no_dropped_short_secret() -> None:
    """A client another test dropped stays live until the collector frees its reference
    cycles; with a throwaway key such as ``"k"`` every ``k`` of this test's logs, errors
    and Sentry events would be redacted. Collected first then (the check is cheap)."""
    if any(len(secret) < 20 for secret in live_secrets()):
        gc.collect()


def pytest_sessionfinish() -> None:
    """Leaves no dropped client to a process that goes on after the session: mutmut
    freezes the collector after its own test sessions and forks each mutant's run from
    there, so a client left in a reference cycle would stay live (and its secret key
    redacted from every string) in every mutant's tests."""
    gc.collect()


Answer = RawResponse | BaseException | dict[str, Any]


def ok(**fields: Any) -> dict[str, Any]:
    return {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": "", **fields}


def fail(code: int, info: str = "failed", **fields: Any) -> dict[str, Any]:
    return {"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info, **fields}


@attrs.define
class SentRequest:
    url: str
    body: Any
    timeout: float

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def params(self) -> dict[str, str]:
        query = parse_qs(urlsplit(self.url).query, keep_blank_values=True)
        return {key: values[0] for key, values in query.items()}


class ScriptedTransport:
    """A Transport answering from a script, recording every request it is given.

    Each answer is a dict (sent as a 200 JSON body), a RawResponse, or an exception to
    raise; the last answer repeats. ``answer`` may also be a function of the request.
    """

    def __init__(self, *answers: Answer, answer: Callable[[SentRequest], Answer] | None = None):
        self.script = list(answers) or [ok()]
        self.answer = answer
        self.sent: list[SentRequest] = []
        self.closed = False

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        request = SentRequest(url, json.loads(content), timeout)
        self.sent.append(request)
        if self.answer is not None:
            result = self.answer(request)
        else:
            result = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, RawResponse):
            return result
        return RawResponse(200, json.dumps(result).encode())

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry pauses shrunk to nothing; what is retried stays the same."""
    monkeypatch.setattr(retry_module, "backoff", lambda attempt, **_: 0.0)
    monkeypatch.setattr(retry_module, "RATE_LIMITED_RETRY_DELAY", 0.0)


@pytest.fixture
def make_chat() -> Callable[..., TencentChat]:
    def factory(transport: Any, **options: Any) -> TencentChat:
        options.setdefault("rate_limit", None)
        key = None if "usersig" in options else SECRET_KEY
        return TencentChat(
            SDKAPPID, key, admin=ADMIN, base_url=BASE_URL, transport=transport, **options
        )

    return factory


@attrs.define
class RespxChat:
    """A TencentChat sending through a real httpx.AsyncClient whose network respx mocks."""

    chat: TencentChat
    router: Any

    def answer(self, endpoint: str, *responses: dict[str, Any]) -> Any:
        """Mock ``endpoint`` (``service/command``) with these JSON answers, in turn."""
        import httpx

        route = self.router.post(f"{BASE_URL}/v4/{endpoint}")
        route.side_effect = [httpx.Response(200, json=body) for body in responses]
        return route

    def sent(self) -> list[SentRequest]:
        return [
            SentRequest(str(call.request.url), json.loads(call.request.content), 0.0)
            for call in self.router.calls
        ]


@pytest.fixture
async def respx_chat() -> Any:
    import httpx
    import respx

    async with httpx.AsyncClient() as client:
        with respx.mock(assert_all_called=False) as router:
            chat = TencentChat(
                SDKAPPID, SECRET_KEY, admin=ADMIN, base_url=BASE_URL, http_client=client
            )
            yield RespxChat(chat, router)
            await chat.aclose()


@attrs.define
class OTel:
    """The process's OpenTelemetry SDK providers, with in-memory span and metric readers."""

    exporter: Any
    reader: Any
    collected: list[Any] = attrs.Factory(list)  # metrics, as (name, data point)
    described: dict[str, Any] = attrs.Factory(dict)  # metric name -> (unit, description)

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """Data points of metric ``name`` recorded since :meth:`reset`."""
        data = self.reader.get_metrics_data()  # delta temporality: consumed when read
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                if not scope.scope.name.startswith("tencent_chat_robots"):
                    continue  # another library's (FastAPI's own telemetry, say)
                for metric in scope.metrics:
                    self.described[metric.name] = (metric.unit, metric.description)
                    self.collected.extend((metric.name, point) for point in metric.data.data_points)
        return [point for metric_name, point in self.collected if metric_name == name]

    def reset(self) -> None:
        self.exporter.clear()
        self.reader.get_metrics_data()
        self.collected.clear()


_OTEL: OTel | None = None


@pytest.fixture
def otel() -> OTel:
    """Global OpenTelemetry providers (set once per process: OTel refuses to replace them)."""
    global _OTEL
    if _OTEL is None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
        from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        delta = AggregationTemporality.DELTA
        reader = InMemoryMetricReader(preferred_temporality={Counter: delta, Histogram: delta})
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _OTEL = OTel(exporter, reader)
    _OTEL.reset()
    return _OTEL
