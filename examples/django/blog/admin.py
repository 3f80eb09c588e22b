from django.contrib import admin

from pgfeed.django.admin import FeedAdminMixin

from .models import Like, Post


@admin.register(Post)
class PostAdmin(FeedAdminMixin, admin.ModelAdmin):
    """Each post's embedding state (a column and a filter) and "re-embed selected"."""

    pgfeed_feed = "posts"
    list_display = ["title", "author", "published", "created_at"]


admin.site.register(Like)
