"""The feed: pgfeed in the database (a no-op once a superuser installed it), then the feed over the posts and
their likes. Reversed, the feed is detached and dropped; pgfeed stays."""

from django.db import migrations
from django.db.models import Q

from pgfeed.django.operations import AttachContent, AttachInteractions, CreateFeed, InstallPgfeed


class Migration(migrations.Migration):
    dependencies = [("blog", "0001_initial")]

    operations = [
        InstallPgfeed(),
        CreateFeed("posts", weight_similarity=0.6, weight_freshness=0.3, weight_popularity=0.1,
                   max_per_group=2),
        AttachContent("posts", model="blog.Post", text=["title", "body"], created_at="created_at",
                      condition=Q(published=True), group_column="author"),
        AttachInteractions("posts", model="blog.Like", user="user", item="post", created_at="created_at"),
    ]
