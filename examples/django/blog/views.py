from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from pgfeed.django import FeedPaginator

from .models import Post


def feed(request):
    """The signed-in user's feed (a cold start for visitors), ten posts a page: two queries, the authors
    included. ?after=<cursor> is the next page."""
    user = request.user if request.user.is_authenticated else None
    paginator = FeedPaginator(Post.objects.select_related("author"), "posts", user, per_page=10)
    return render(request, "blog/feed.html", {"page": paginator.page(request.GET.get("after"))})


@require_POST
@login_required
def new_post(request):
    if not request.POST.get("title"):
        return HttpResponseBadRequest("a post needs a title")
    post = Post.objects.create(author=request.user, title=request.POST["title"], body=request.POST.get("body", ""))
    return HttpResponse(status=201, headers={"Location": f"/posts/{post.pk}/"})


@require_POST
@login_required
def like(request, pk):
    get_object_or_404(Post, pk=pk).liked_by.add(request.user)
    return HttpResponse(status=204)
