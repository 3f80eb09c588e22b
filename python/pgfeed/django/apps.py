from django.apps import AppConfig


class PgfeedConfig(AppConfig):
    """pgfeed in INSTALLED_APPS. Nothing here touches the database: Django starts (and runs manage.py
    commands) whether pgfeed is installed in the database yet or not."""

    name = "pgfeed.django"
    label = "pgfeed"
    verbose_name = "pgfeed"

    def ready(self) -> None:
        from pgfeed.django import checks  # noqa: F401 (registers the system checks)
