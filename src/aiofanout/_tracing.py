"""Traces through OpenTelemetry when it is installed and configured: the one module importing it.

Without ``opentelemetry-api`` (the ``otel`` extra) every function here is a no-op and nothing
is imported. With it but no SDK tracer provider set (the API's default proxy), the engine asks
once per fan-out (:func:`fanout_tracing`) and gets ``None``: no span object, no attribute dict,
no context switch per item. Only a fan-out under a real provider pays for its spans.

What a traced fan-out records, named by OpenTelemetry's semantic conventions:

- a span per fan-out (``aiofanout.dispatch_many`` / ``aiofanout.stream``), its options as
  attributes and, at the end, its counts by status, retries, throttles and the adaptive limit;
- a span per attempt (a retry is another attempt), described by the target
  (:meth:`Target.span_description`): ``faas.*`` for Lambda, ``messaging.*`` for SQS and SNS;
  status ``ERROR`` and ``error.type`` (the library's error class) when it failed;
- the attempt's W3C trace context (``traceparent``, ``tracestate``) in every task envelope the
  attempt sends, inside the signed bytes (:func:`envelope_trace`, called by
  ``PreparedEnvelope.finish``), so the worker's span for the task continues the sender's trace;
- on the worker, a span per task run, a processing span per SQS batch linking every
  message's context, a span per send of replies (:func:`task_span`, :func:`sqs_batch_span`,
  :func:`reply_span`), whose context each reply carries, signed;
- on the sender, a span per receive from a reply queue that brought replies, linking each
  reply's context (:func:`receive_span`).

The W3C propagator is used directly, not the global one: the envelope's fields are W3C's by
name, whatever else a process propagates (Lambda's ``X-Amzn-Trace-Id`` is left alone).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

AVAILABLE = True  # whether opentelemetry-api imports
try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed: tracing is off
    AVAILABLE = False

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

__all__ = [
    "ATTEMPT_SPAN",
    "AttemptSpan",
    "CurrentSpan",
    "ENVELOPE_TRACE_ROOM",
    "FanoutTracing",
    "INVOCATION_ID",
    "SpanDescription",
    "envelope_trace",
    "fanout_tracing",
    "receive_span",
    "receive_started",
    "reply_span",
    "sqs_batch_span",
    "task_span",
    "tracing_on",
]

#: A target's description of its calls: the span name, ``"client"`` or ``"producer"``, and the
#: attributes every attempt span starts with.
SpanDescription = tuple[str, str, Mapping[str, str | int]]

#: The span of the attempt in flight, whose context a task envelope finished in it carries
#: (see :func:`envelope_trace`); ``None`` outside a traced attempt.
ATTEMPT_SPAN: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "aiofanout_attempt_span", default=None
)
#: The bytes an envelope prepared in a traced fan-out keeps for :func:`envelope_trace`.
ENVELOPE_TRACE_ROOM: contextvars.ContextVar[int] = contextvars.ContextVar(
    "aiofanout_envelope_trace_room", default=0
)
#: The Lambda request id of the invocation being handled, for the worker's task spans.
INVOCATION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "aiofanout_invocation_id", default=None
)

# traceparent is 55 characters (version 00); W3C asks propagators to keep 512 of tracestate.
_TRACESTATE_MAX = 512
_TRACE_ROOM = len(b',"traceparent":""') + 55 + len(b',"tracestate":""') + 2 * _TRACESTATE_MAX
_SCOPE = "aiofanout"
_KINDS = {} if not AVAILABLE else {"producer": SpanKind.PRODUCER, "internal": SpanKind.INTERNAL}


def tracing_on() -> bool:
    """Whether spans would be recorded: the API is installed and a real provider is set."""
    if not AVAILABLE:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _tracer() -> Tracer:
    return trace.get_tracer(_SCOPE)


def envelope_trace() -> bytes:
    """The ``"traceparent":...,"tracestate":...`` JSON members for an envelope sent now.

    ``b""`` outside a traced attempt: one context variable read, made only by envelopes. The
    W3C form, made as the propagator makes it (version 00), the tracestate kept if it fits.
    """
    span = ATTEMPT_SPAN.get()
    if span is None:
        return b""
    fields = _w3c_fields(span)
    if not fields:
        return b""
    members = b'"traceparent":"' + fields["traceparent"].encode() + b'"'
    if "tracestate" in fields:
        members += b',"tracestate":' + json.dumps(fields["tracestate"]).encode()
    return members


def _w3c_fields(span: Span) -> dict[str, str]:
    """``span``'s context as an envelope's ``traceparent``/``tracestate`` (``{}``: invalid)."""
    context = span.get_span_context()
    if not context.is_valid:
        return {}
    parent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    fields = {"traceparent": parent}
    state = context.trace_state.to_header()
    if state and len(state) <= _TRACESTATE_MAX:
        fields["tracestate"] = state
    return fields


def _failed(span: Span, error: BaseException) -> None:
    # The class only, as the worker's logs do: a message (a task's own, carried back in
    # TaskFailed) may hold an argument or a value, which never goes in a span.
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(StatusCode.ERROR, type(error).__name__)


class CurrentSpan:
    """A span made current (its context attached) until :meth:`end`."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def end(self, error: BaseException | None = None) -> None:
        """End the span; ``error``: what failed it (its class is the span's ``error.type``)."""
        otel_context.detach(self._token)
        if error is not None:
            _failed(self.span, error)
        self.span.end()


class AttemptSpan(CurrentSpan):
    """One attempt's span, current and in the envelopes it sends until :meth:`end`."""

    __slots__ = ("_trace_token",)

    def __init__(self, span: Span) -> None:
        super().__init__(span)
        self._trace_token = ATTEMPT_SPAN.set(span)

    def end(self, error: BaseException | None = None, *, failed: int = 0) -> None:
        """End the span: ``error`` failed the whole attempt; ``failed`` items of a batch did."""
        ATTEMPT_SPAN.reset(self._trace_token)
        if error is None and failed:
            self.span.set_attribute("aiofanout.batch.failed", failed)
        super().end(error)


class FanoutTracing:
    """What a traced fan-out keeps: its tracer, its span, how its target's attempts are named."""

    __slots__ = ("attributes", "fanout", "kind", "messaging", "name", "tracer")

    def __init__(self, description: SpanDescription) -> None:
        self.tracer = _tracer()
        self.name, kind, self.attributes = description
        self.kind = _KINDS.get(kind, SpanKind.CLIENT)
        self.messaging = "messaging.system" in self.attributes
        self.fanout: Span | None = None

    @contextlib.contextmanager
    def fanout_span(self, name: str, options: Mapping[str, Any]) -> Iterator[Span]:
        """The fan-out's span, current while its workers run; envelopes keep room for context."""
        attributes = {f"aiofanout.{k}": v for k, v in options.items() if v is not None}
        room = ENVELOPE_TRACE_ROOM.set(_TRACE_ROOM)
        try:
            with self.tracer.start_as_current_span(
                name, attributes=attributes, record_exception=False
            ) as span:
                self.fanout = span
                yield span
        finally:
            ENVELOPE_TRACE_ROOM.reset(room)

    def attempt(self, messages: int | None = None) -> AttemptSpan:
        """Start an attempt's span; ``messages``: how many a batching target sends in it."""
        span = self.tracer.start_span(self.name, kind=self.kind, attributes=self.attributes)
        if messages is not None:
            key = "messaging.batch.message_count" if self.messaging else "aiofanout.batch.size"
            span.set_attribute(key, messages)
        return AttemptSpan(span)

    def summary(self, counts: Mapping[str, int], retries: int, throttles: int, limit: Any) -> None:
        """Set the fan-out's counts at its end (``limit``: an ``AdaptiveLimit`` or ``None``)."""
        span = self.fanout
        if span is None:
            return
        for status, count in counts.items():
            span.set_attribute(f"aiofanout.items.{status}", count)
        span.set_attribute("aiofanout.retries", retries)
        span.set_attribute("aiofanout.throttles", throttles)
        if limit is not None:
            span.set_attribute("aiofanout.limit.final", limit.current)
            span.set_attribute("aiofanout.limit.min", limit.min)
            span.set_attribute("aiofanout.limit.max", limit.max)


def fanout_tracing(describe: Callable[[], SpanDescription]) -> FanoutTracing | None:
    """A fan-out's tracing, or ``None`` when spans would not be recorded (asked once per run).

    ``describe`` is the target's ``span_description``, called only when tracing is on.
    """
    if not tracing_on():
        return None
    return FanoutTracing(describe())


def _remote_context(fields: Mapping[str, Any]) -> Any:
    """The OpenTelemetry context of an envelope's ``traceparent``/``tracestate`` (or none)."""
    carrier = {k: v for k in ("traceparent", "tracestate") if isinstance(v := fields.get(k), str)}
    if not carrier:
        return None
    return TraceContextTextMapPropagator().extract(carrier)


def task_span(envelope: Any, *, message_id: str | None = None) -> CurrentSpan | None:
    """Start the worker's span for one task run, a child of the sender's attempt if it has one.

    ``envelope`` is the decoded ``TaskEnvelope``; its trace context was covered by the
    signature when the app has a secret. ``None`` when tracing is off.
    """
    if not tracing_on():
        return None
    attributes: dict[str, str | int] = {
        "aiofanout.task": envelope.task,
        "aiofanout.envelope_id": envelope.id,
        "aiofanout.attempt": envelope.attempt,
    }
    if (invocation_id := INVOCATION_ID.get()) is not None:
        attributes["faas.invocation_id"] = invocation_id
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    parent = _remote_context(_envelope_fields(envelope))
    kind = SpanKind.CONSUMER if message_id is not None else SpanKind.SERVER
    span = _tracer().start_span(envelope.task, context=parent, kind=kind, attributes=attributes)
    return CurrentSpan(span)


@contextlib.contextmanager
def sqs_batch_span(queue: str, count: int, bodies: Callable[[], Sequence[str]]) -> Iterator[None]:
    """The processing span of an SQS batch of ``count`` messages, a link to each one's context.

    ``bodies`` gives the messages' bodies, asked only when tracing is on.
    """
    if not tracing_on():
        yield
        return
    contexts = (_span_context(_remote_context(_fields_of(body))) for body in bodies())
    links = [Link(context) for context in contexts if context is not None]
    attributes: dict[str, str | int] = {
        "messaging.system": "aws_sqs",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.batch.message_count": count,
    }
    with _tracer().start_as_current_span(
        f"process {queue}", kind=SpanKind.CONSUMER, attributes=attributes, links=links
    ):
        yield


@contextlib.contextmanager
def reply_span(queue_url: str, envelopes: Sequence[Any]) -> Iterator[Mapping[str, str] | None]:
    """The worker's span sending replies to ``queue_url``, in the trace of what they answer.

    One reply: a child of the sender's attempt (its envelope's context). Several (an SQS
    batch's): a span link to each one's, as for any batch of messages. Yields the span's own
    context as reply fields (each reply's creation context, for the sender's receive span to
    link), or ``None`` when tracing is off.
    """
    if not tracing_on():
        yield None
        return
    queue = queue_url.rsplit("/", 1)[-1]
    attributes: dict[str, str | int] = {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": queue,
        "messaging.operation.type": "send",
        "messaging.operation.name": "SendMessage" if len(envelopes) == 1 else "SendMessageBatch",
    }
    contexts = [_remote_context(_envelope_fields(envelope)) for envelope in envelopes]
    parent, links = None, []
    if len(envelopes) == 1:
        parent = contexts[0]
    else:
        attributes["messaging.batch.message_count"] = len(envelopes)
        links = [Link(c) for c in map(_span_context, contexts) if c is not None]
    with _tracer().start_as_current_span(
        f"send {queue}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield _w3c_fields(span)
        except Exception as exc:
            _failed(span, exc)
            raise


def receive_started() -> int | None:
    """When a receive from a reply queue starts (ns since the epoch), or ``None`` untraced.

    Asked per poll, not per fan-out: a reply queue outlives the fan-outs that share it.
    """
    return time.time_ns() if tracing_on() else None


def receive_span(
    queue_url: str, started: int | None, count: int, bodies: Callable[[], Sequence[str]]
) -> None:
    """Record the CLIENT span of a ``ReceiveMessage`` that brought ``count`` replies.

    ``started``: from :func:`receive_started` (``None``: untraced, nothing is made). A poll that
    brought nothing makes no span: a receiver long-polls all the time a target is open, so
    those would be one span per poll per queue that says only "no reply yet". The span is a
    root: the queue's receivers serve every fan-out sharing it, so no fan-out is its parent;
    it links to each reply's own context (its worker's send span), asked of ``bodies`` only here.
    """
    if started is None or not count:
        return
    contexts = (_span_context(_remote_context(_fields_of(body))) for body in bodies())
    queue = queue_url.rsplit("/", 1)[-1]
    attributes: dict[str, str | int] = {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": queue,
        "messaging.operation.type": "receive",
        "messaging.operation.name": "ReceiveMessage",
        "messaging.batch.message_count": count,
    }
    span = _tracer().start_span(
        f"receive {queue}",
        context=otel_context.Context(),
        kind=SpanKind.CLIENT,
        attributes=attributes,
        links=[Link(context) for context in contexts if context is not None],
        start_time=started,
    )
    span.end()


def _envelope_fields(envelope: Any) -> Mapping[str, Any]:
    return {"traceparent": envelope.traceparent, "tracestate": envelope.tracestate}


def _span_context(context: Any) -> Any:
    """The valid span context an extracted context holds, or ``None``."""
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def _fields_of(body: str) -> Mapping[str, Any]:
    """An SQS body's top-level JSON fields, for its trace context only (``{}``: not JSON)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
