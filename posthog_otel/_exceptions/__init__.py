"""Error tracking: exceptions to PostHog ``$exception`` events, through OpenTelemetry.

- ``capture.py``: what ``capture_exception()`` (a method of ``_emit.Operations``, so of the
  module and of each ``Posthog``) and the integrations' capture of what escapes a request or a
  task send: a ``posthog.exception`` record built on the caller's thread;
- ``frames.py``: a Python exception as PostHog's SDK describes it (``$exception_list``);
- ``autocapture.py``: ``sys.excepthook`` and ``threading.excepthook``;
- ``records.py``: OpenTelemetry's own exception records (``exception`` span events, log
  records with ``exception.*`` attributes) read by the exporters and the gateway;
- ``stacktrace.py``: ``exception.stacktrace`` text back into frames;
- ``limits.py``: the per type and place rate limit, and duplicates within a trace.
"""

from typing import Any, Dict, Optional

from .. import _context

#: PostHog's error tracking options, set (by their names) on the module, ``configure()`` or a client.
OPTIONS = frozenset({
    "enable_exception_autocapture", "log_captured_exceptions", "project_root", "in_app_modules",
    "exception_autocapture_bucket_size", "exception_autocapture_refill_rate",
    "exception_autocapture_refill_interval_seconds",
})  # fmt: skip


def apply(values: Dict[str, Any], target: Any = None) -> None:
    """PostHog's error tracking options, applied now; ``target`` is the emitter autocapture sends with."""
    from . import autocapture, capture, frames, limits

    if "enable_exception_autocapture" in values:
        autocapture.enable(target) if values["enable_exception_autocapture"] else autocapture.disable()
    if "log_captured_exceptions" in values:
        capture.LOG_CAPTURED[0] = bool(values["log_captured_exceptions"])
    if "project_root" in values:
        frames.set_project_root(values["project_root"])
    if "in_app_modules" in values:
        frames.set_in_app_modules(values["in_app_modules"])
    limits.configure(
        values.get("exception_autocapture_bucket_size"),
        values.get("exception_autocapture_refill_rate"),
        values.get("exception_autocapture_refill_interval_seconds"),
    )


def _capture_escaping(error: Exception, explicit: Optional[bool], client: Any = None) -> None:
    """An exception escaping ``new_context`` (or a ``scoped`` function): sent when the context
    asks for it, or when autocapture is on (unless the context said no)."""
    from . import autocapture, capture

    if explicit or autocapture.exception_autocapture_enabled():
        capture.capture_escaping(error, capture.How(), getattr(client, "_emitter", None))


_context.capture_escaping = _capture_escaping
