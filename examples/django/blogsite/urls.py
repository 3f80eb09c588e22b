from django.contrib import admin
from django.urls import path

from blog import views

urlpatterns = [
    path("", views.feed, name="feed"),
    path("posts/", views.new_post, name="new_post"),
    path("posts/<int:pk>/like/", views.like, name="like"),
    path("admin/", admin.site.urls),
]
