"""Django: pgfeed as an app (``"pgfeed.django"`` in INSTALLED_APPS), a feed as a QuerySet of your model in feed
order, and a paginator that pages through a feed by its cursors.

    from pgfeed.django import FeedPaginator, feed_queryset
    for post in feed_queryset(Post.objects.select_related("author"), "posts", request.user, limit=20):
        print(post.title, post.author.name, post.score, post.because)
    page = FeedPaginator(Post, "posts", request.user, per_page=20).page(request.GET.get("after"))
"""

from pgfeed.django.queryset import FeedPage, FeedPaginator, feed_queryset

__all__ = ["FeedPage", "FeedPaginator", "feed_queryset"]
