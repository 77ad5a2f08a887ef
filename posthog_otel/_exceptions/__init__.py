"""Error tracking: exceptions to PostHog ``$exception`` events, through OpenTelemetry.

- ``capture.py``: ``capture_exception()`` (and the integrations' capture of what escapes a
  request or a task), a ``posthog.exception`` record built on the caller's thread;
- ``frames.py``: a Python exception as PostHog's SDK describes it (``$exception_list``);
- ``autocapture.py``: ``sys.excepthook`` and ``threading.excepthook``;
- ``records.py``: OpenTelemetry's own exception records (``exception`` span events, log
  records with ``exception.*`` attributes) read by the exporters and the gateway;
- ``stacktrace.py``: ``exception.stacktrace`` text back into frames;
- ``limits.py``: the per type and place rate limit, and duplicates within a trace.
"""

from .autocapture import disable_exception_autocapture, enable_exception_autocapture
from .capture import capture_exception

__all__ = ["capture_exception", "disable_exception_autocapture", "enable_exception_autocapture"]
