"""The bot's own traces (OpenTelemetry): SDK set-up from the standard variables, and context hand-overs.

`setup_tracing` is called once at start (`remediate serve`, `remediate demo`): with
``OTEL_TRACES_EXPORTER`` ``otlp`` (OTLP/HTTP, endpoint and headers from the SDK's own ``OTEL_EXPORTER_*``
variables) or ``console`` it installs a tracer provider whose resource comes from ``OTEL_SERVICE_NAME``
and ``OTEL_RESOURCE_ATTRIBUTES`` (service name ``remediate`` by default); with ``none`` (the default)
or ``OTEL_SDK_DISABLED=true`` it installs nothing, so every span below is a no-op and nothing leaves the
process. The spans themselves use only the API (`remediation/` never sees the SDK).

Work that leaves the thread that started it keeps its trace: `bound` carries the current context to a
pool thread (after a Slack ack, the action runner), `carrier` / `restored` carry it through a stored
row (the outbox) as a W3C ``traceparent``. docs/observability.md lists every span.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, Span, SpanKind
from sqlalchemy import Engine

from bot.settings import Settings
from incidents_db.outbox import Message

log = logging.getLogger("remediate.tracing")
TRACER = "remediate"
SERVICE_NAME = "remediate"
_T = TypeVar("_T")
_INSTRUMENTED: weakref.WeakSet[Engine] = weakref.WeakSet()


_TRACER = trace.get_tracer(TRACER)  # a proxy: it follows the provider `setup_tracing` installs later


def tracer() -> trace.Tracer:
    """Return the bot's tracer (a no-op one until `setup_tracing` installed a provider)."""
    return _TRACER


def enabled() -> bool:
    """Return whether an SDK tracer provider is installed (tracing asked for and not disabled)."""
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def setup_tracing(
    settings: Settings, *, exporter: Any | None = None, sampler: Any | None = None
) -> Any | None:
    """Install the SDK tracer provider the settings ask for; return it (None when nothing is traced).

    ``exporter`` replaces the one ``OTEL_TRACES_EXPORTER`` names and ``sampler`` the one
    ``OTEL_TRACES_SAMPLER`` names (the benchmark's). Spans are batched (``OTEL_BSP_*``);
    `shutdown_tracing` flushes them at exit.
    """
    if settings.otel_sdk_disabled or (exporter is None and settings.otel_traces_exporter == "none"):
        return None
    if enabled():  # one provider per process (a second demo stack in the same process keeps it)
        return trace.get_tracer_provider()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter is None and settings.otel_traces_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    resource = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource, sampler=sampler)
    exporter = exporter or ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing: %s, service %s", type(exporter).__name__, resource.attributes["service.name"])
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the installed provider (if any), so the last spans are exported before exit."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if enabled() and callable(shutdown):
        shutdown()


def instrument_engine(engine: Engine) -> None:
    """Trace every SQL statement on ``engine`` (the SQLAlchemy instrumentation), once, when tracing."""
    if not enabled() or engine in _INSTRUMENTED:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    # the package declares sqlalchemy < 2.1 but only uses the engine events 2.1 still has
    instrumentor.instrument(engine=engine, skip_dep_check=True)
    _INSTRUMENTED.add(engine)


def wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a WSGI app in the WSGI instrumentation (one server span per request) when tracing."""
    if not enabled():
        return app
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(app)  # type: ignore[no-any-return]


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[Span]:
    """Run a block in a span of the bot's tracer with the given attributes (None values left out)."""
    with tracer().start_as_current_span(name, kind=kind, attributes=_clean(attributes)) as current:
        yield current


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            value = [str(v) for v in value]
        elif not isinstance(value, (str, bool, int, float)):
            value = str(value)
        out[f"remediate.{key}"] = value
    return out


def traced_job(name: str, func: Callable[..., _T]) -> Callable[..., _T]:
    """Return a scheduled job's function running each time in a root span ``job <name>``."""

    def run(*args: Any, **kwargs: Any) -> _T:
        with span(f"job {name}", job=name):
            return func(*args, **kwargs)

    return run


def trace_id() -> str | None:
    """Return the current span's trace id (32 hex digits), or None when nothing is traced."""
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None


def bound(job: Callable[[], _T]) -> Callable[[], _T]:
    """Return ``job`` bound to the current context, to run on another thread inside the same trace."""
    captured = context.get_current()

    def run() -> _T:
        token = context.attach(captured)
        try:
            return job()
        finally:
            context.detach(token)

    return run


def carrier() -> dict[str, str]:
    """Return the current context as W3C headers (``traceparent``), empty when nothing is traced."""
    out: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(out)
    return out


@contextmanager
def continued(stored: Mapping[str, Any] | None) -> Iterator[None]:
    """Run a block in the context a carrier names, as if in the span that sent it (no span of its own).

    The work process (`bot.app.handoff`) dispatches a handed-off Slack request so: what its listeners
    start is in the request's own trace, and links to that request's server span, as in one process.
    """
    headers = {str(k): str(v) for k, v in (stored or {}).items()}
    if not headers:
        yield
        return
    token = context.attach(propagate.extract(headers))
    try:
        yield
    finally:
        context.detach(token)


def tagged(payload: dict[str, Any]) -> dict[str, Any]:
    """Return an outbox payload with the current trace's carrier under ``trace`` (unchanged untraced)."""
    found = carrier()
    return {**payload, "trace": found} if found else payload


@contextmanager
def restored(name: str, stored: Mapping[str, Any] | None, **attributes: Any) -> Iterator[Span]:
    """Run a block in a span continuing the trace a stored carrier names, linked to the current one.

    Used where work resumes later from a row (an outbox delivery) or on behalf of something started
    elsewhere (a click on a card continues its incident's trace); the span that was current here (the
    click's own request) is kept as a link, so both traces lead to each other.
    """
    headers = {str(k): str(v) for k, v in (stored or {}).items()}
    parent = propagate.extract(headers) if headers else None
    here = trace.get_current_span().get_span_context()
    stored_valid = parent is not None and trace.get_current_span(parent).get_span_context().is_valid
    links = [Link(here)] if here.is_valid and stored_valid else []
    with tracer().start_as_current_span(
        name, context=parent if stored_valid else None, links=links, attributes=_clean(attributes)
    ) as current:
        yield current


def delivering(message: Message) -> AbstractContextManager[Span]:
    """Return the span of one outbox delivery, continuing the trace its row was queued in."""
    return restored(
        "outbox.deliver",
        message.payload.get("trace"),
        kind=message.kind,
        outbox_id=message.id,
        attempt=message.attempts + 1,
        incident_id=message.incident_id,
    )
