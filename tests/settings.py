"""Settings for the test suite.

Environment:
- ``PAYGATE_TEST_DB=postgres`` runs on PostgreSQL (``PAYGATE_TEST_PG_*`` for the
  connection; defaults: 127.0.0.1:5432, user postgres, database test); default SQLite.
- ``PAYGATE_TEST_DB=mysql`` runs on MariaDB or MySQL (``PAYGATE_TEST_MYSQL_*`` for the
  connection; defaults: 127.0.0.1:3306, user root with an empty password, database test,
  test database ``PAYGATE_TEST_MYSQL_TEST_NAME`` or test_paygate), in utf8mb4 and READ
  COMMITTED, as docs/installation.md asks of a production database.
- ``PAYGATE_TEST_PG_PREPARED=1`` uses psycopg's server-side binding and prepared
  statements on PostgreSQL (Django's default is client-side binding).
- ``PAYGATE_TEST_SQLITE_FILE=<path>`` runs on that SQLite file (for tests that start
  other processes on the same database).
- ``PAYGATE_TEST_DUMMY_STORE`` is the dummy provider's ``store`` option; ``memory`` by
  default, so the suite's statement counts are the library's own.
- ``PAYGATE_TEST_SWAPPED=1`` swaps the payment model for ``testapp.ShopPayment``
  (a subclass of AbstractPayment with an FK to ``testapp.Order``).
"""

from __future__ import annotations

import os

import django

SECRET_KEY = "tests-only-not-secret"
DEBUG = True
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ALLOWED_HOSTS = ["*"]
STATIC_URL = "/static/"
CSRF_FAILURE_VIEW = "django_paygate.views.api.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_paygate",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(os.path.dirname(__file__), "templates")],
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

if os.environ.get("PAYGATE_TEST_DB") == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("PAYGATE_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("PAYGATE_TEST_PG_PORT", "5432"),
            "USER": os.environ.get("PAYGATE_TEST_PG_USER", "postgres"),
            "NAME": os.environ.get("PAYGATE_TEST_PG_NAME", "test"),
            "TEST": {"NAME": os.environ.get("PAYGATE_TEST_PG_TEST_NAME", "test_paygate")},
            "OPTIONS": {
                # A test database need not survive a crash: commits do not wait for the disk.
                "options": "-c synchronous_commit=off",
                **(
                    {"server_side_binding": True, "prepare_threshold": 5}
                    if os.environ.get("PAYGATE_TEST_PG_PREPARED") == "1"
                    else {}
                ),
            },
        }
    }
elif os.environ.get("PAYGATE_TEST_DB") == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": os.environ.get("PAYGATE_TEST_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("PAYGATE_TEST_MYSQL_PORT", "3306"),
            "USER": os.environ.get("PAYGATE_TEST_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("PAYGATE_TEST_MYSQL_PASSWORD", ""),
            "NAME": os.environ.get("PAYGATE_TEST_MYSQL_NAME", "test"),
            "TEST": {
                "NAME": os.environ.get("PAYGATE_TEST_MYSQL_TEST_NAME", "test_paygate"),
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_unicode_ci",
            },
            "OPTIONS": {"charset": "utf8mb4", "isolation_level": "read committed"},
        }
    }
elif os.environ.get("PAYGATE_TEST_SQLITE_FILE"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["PAYGATE_TEST_SQLITE_FILE"],
        }
    }
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

if os.environ.get("PAYGATE_TEST_SWAPPED") == "1":
    PAYGATE_PAYMENT_MODEL = "testapp.ShopPayment"

PAYGATE = {
    "DEFAULT_PROVIDER": "dummy",
    "PROVIDERS": {
        "dummy": {
            "BACKEND": "django_paygate.providers.dummy.DummyProvider",
            "OPTIONS": {"store": os.environ.get("PAYGATE_TEST_DUMMY_STORE", "memory")},
        },
    },
    "PAYABLES": {"order": "testapp.Order", "donation": "testapp.Donation"},
}

if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING_CONFIG = None
