"""A blog with a personalized feed. The database comes from libpq's environment (PGHOST, PGPORT, PGDATABASE,
PGUSER, PGPASSWORD), so that the same settings run on a laptop, in CI and in production."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example only: set DJANGO_SECRET_KEY in production")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "pgfeed.django",
    "blog",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "blogsite.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "django.contrib.auth.context_processors.auth",
                                       "django.contrib.messages.context_processors.messages"]},
}]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "blog"),
        # The feed is sync: a connection's first write loads the model in its backend (seconds), so keep
        # connections (pgfeed.W001 warns otherwise).
        "CONN_MAX_AGE": int(os.environ.get("BLOG_CONN_MAX_AGE", "600")),
        "CONN_HEALTH_CHECKS": True,
        # Django's test database is made from this template, which a superuser gave pgfeed once (or template1)
        "TEST": {"TEMPLATE": os.environ.get("BLOG_TEST_TEMPLATE") or None},
    }
}
if os.environ.get("BLOG_POOL") == "1":  # or Django's connection pool (psycopg_pool), which keeps them too
    DATABASES["default"].update(CONN_MAX_AGE=0, OPTIONS={"pool": {"min_size": 2, "max_size": 4}})

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "static/"
LOGIN_URL = "/admin/login/"
