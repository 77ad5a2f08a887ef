"""Identity for work that arrives from outside: web requests and task queues.

- ``posthog_otel.integrations.wsgi.PostHogWSGIMiddleware`` and
  ``posthog_otel.integrations.asgi.PostHogASGIMiddleware`` open a context per request,
  with the person and session of PostHog's tracing headers (or of an application
  callback), the request's tags, and ``user.id`` / ``session.id`` on the server span.
- ``posthog_otel.integrations.celery.instrument_celery`` carries the sending context's
  person, session and tags to the task through its headers.

None of them imports a framework at ``import posthog_otel``; the Celery one needs Celery.
"""
