"""Django settings and URLs of tests/apps/identity_web_app.py (DJANGO_SETTINGS_MODULE, so that
OpenTelemetry's Django instrumentation, which reads them at start-up, instruments the app)."""

from django.http import HttpResponse
from django.urls import path

DEBUG = False
SECRET_KEY = "test"
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "identity_django_settings"
INSTALLED_APPS: list = []
DATABASES: dict = {}
MIDDLEWARE = ["posthog_otel.integrations.django.PosthogContextMiddleware"]


def order(request, who):
    from identity_web_app import handle

    handle(who)
    return HttpResponse("ok")


urlpatterns = [path("order/<who>", order)]
