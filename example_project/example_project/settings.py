"""Settings of the example shop: SQLite, the dummy provider, emails on the console.

Environment:
- ``EXAMPLE_DB_PATH``: the SQLite file (default: ``example_project/db.sqlite3``);
- ``EXAMPLE_SECRET_KEY``, ``EXAMPLE_DEBUG`` (``1`` by default: the dummy
  provider accepts test cards, so it belongs to development only).

Not a production configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY", "example-project-not-a-secret")
DEBUG = os.environ.get("EXAMPLE_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_paygate",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# JSON 403s for the payments API when CSRF fails (HTML for everything else).
CSRF_FAILURE_VIEW = "django_paygate.views.api.csrf_failure"

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH") or BASE_DIR / "db.sqlite3",
        # The dummy provider's webhooks arrive while the shop serves other requests:
        # writers queue for SQLite's lock instead of failing with "database is locked".
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "static/"
LOGIN_URL = "admin:login"

# -- django-paygate ---------------------------------------------------------------

PAYGATE = {
    "DEFAULT_PROVIDER": "dummy",
    "PROVIDERS": {
        "dummy": {
            "BACKEND": "django_paygate.providers.dummy.DummyProvider",
            "OPTIONS": {
                "webhook_secret": "example-dummy-webhook-secret",
                # POST each signed event to this site's own webhook URL after the
                # response, as a real provider would (like `stripe listen`).
                "deliver_webhooks": True,
                # Where to: by default the host of the request that caused the event.
                "webhook_url": os.environ.get("EXAMPLE_DUMMY_WEBHOOK_URL", ""),
            },
        },
    },
    # The orders customers pay for: each sets its own price (django_paygate.payables).
    "PAYABLES": {"order": "shop.Order"},
    "EMAILS": {"FROM_EMAIL": "shop@example.com"},
}

# EXAMPLE_PROVIDER=stripe (scripts/demo sets up the rest): Stripe against localstripe, a
# fake Stripe server on EXAMPLE_LOCALSTRIPE_URL that signs and POSTs its own webhooks.
SHOP_LOCALSTRIPE_URL = ""
if os.environ.get("EXAMPLE_PROVIDER") == "stripe":
    SHOP_LOCALSTRIPE_URL = os.environ.get("EXAMPLE_LOCALSTRIPE_URL", "http://127.0.0.1:8420")
    PAYGATE["DEFAULT_PROVIDER"] = "stripe"
    PAYGATE["PROVIDERS"]["stripe"] = {
        "BACKEND": "django_paygate.providers.stripe.StripeProvider",
        "OPTIONS": {
            "secret_key": "sk_test_example0localstripe",
            "publishable_key": "pk_test_example0localstripe",
            "webhook_secret": "whsec_example0localstripe",
            "api_base": SHOP_LOCALSTRIPE_URL,
            # What localstripe lacks (see docs/providers/stripe.md).
            "automatic_payment_methods": False,
            "send_description": False,
            "attach_before_confirm": True,
            # localstripe's Stripe.js has no Payment Element: a stand-in (shop/localstripe.py).
            "script_url": "/_localstripe/stripe.js",
        },
    }

# Payment emails and post-commit signals run through Django's Tasks framework;
# the immediate backend runs them in-process right after commit.
if django.VERSION >= (6, 0):
    TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
else:  # Django 5.2 with the django-tasks backport
    INSTALLED_APPS.append("django_tasks")
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

# Emails are printed on the console (runserver's terminal).
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = "shop@example.com"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_paygate": {"handlers": ["console"], "level": "INFO"}},
}
