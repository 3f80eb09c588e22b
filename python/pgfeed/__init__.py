"""pgfeed: personalized content feeds inside PostgreSQL.

Install the SQL bundle with :func:`install`, attach it to your tables in SQL,
and read feeds with :func:`feed` (or ``SELECT * FROM pgfeed.feed(...)``).
"""

__version__ = "0.3.0"

from pgfeed.client import FeedItem, feed, profile, status
from pgfeed.installer import InstallError, install, uninstall

__all__ = ["FeedItem", "InstallError", "__version__", "feed", "install", "profile", "status", "uninstall"]
