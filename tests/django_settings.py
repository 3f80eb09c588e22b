"""One Django configuration for every test module that uses Django (settings can be configured once a process):
pgfeed.django with the admin and its apps, on the test database as the superuser DSN."""

from __future__ import annotations

import importlib.util

import django
from django.conf import settings
from psycopg.conninfo import conninfo_to_dict


def configure(dsn: str) -> None:
    if settings.configured:
        return
    params = conninfo_to_dict(dsn)
    rest = ["rest_framework"] if importlib.util.find_spec("rest_framework") else []
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": params["dbname"],
                               "USER": params["user"], "HOST": params["host"], "PORT": params["port"]}},
        INSTALLED_APPS=["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.sessions", "django.contrib.messages", *rest, "pgfeed.django"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.common.CommonMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware",
                    "django.contrib.messages.middleware.MessageMiddleware"],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                       "django.contrib.auth.context_processors.auth",
                                                       "django.contrib.messages.context_processors.messages"]}}],
        ROOT_URLCONF="django_urls", SECRET_KEY="pgfeed tests", ALLOWED_HOSTS=["testserver"],
        USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
