"""pgfeed: personalized content feeds inside PostgreSQL.

Install the SQL bundle with :func:`install`, attach it to your tables in SQL,
and read feeds with :func:`feed` (or ``SELECT * FROM pgfeed.feed(...)``).
"""

from importlib import import_module

__version__ = "0.5.0"

# The public names load their modules when first used: the server's PL/Python
# imports pgfeed's own modules (pgfeed.topk on every new connection's first
# feed read), which need neither psycopg nor numpy.
_EXPORTS = {"FeedItem": "client", "feed": "client", "profile": "client", "status": "client",
            "InstallError": "installer", "install": "installer", "uninstall": "installer"}

__all__ = ["FeedItem", "InstallError", "__version__", "feed", "install", "profile", "status", "uninstall"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pgfeed' has no attribute {name!r}")
    return getattr(import_module(f"pgfeed.{_EXPORTS[name]}"), name)


def check_version(bundle_version: str | None) -> None:
    """The server must import the pgfeed its SQL bundle was installed from."""
    if bundle_version != __version__:
        raise RuntimeError(
            f"the server imports pgfeed {__version__} but the installed SQL bundle is {bundle_version}: "
            "run `pgfeed install` with the same pgfeed the server imports"
        )
