from django.urls import path, re_path

from . import views

app_name = "market"

urlpatterns = [
    path("", views.index, name="index"),
    path("search/", views.search, name="search"),
    path("broker-accounts/<int:pk>/connection-test/", views.connection_test, name="connection_test"),
    re_path(r"^(?P<code>[0-9A-Za-z]{6})/$", views.detail, name="detail"),
    re_path(r"^(?P<code>[0-9A-Za-z]{6})/quote/$", views.quote, name="quote"),
]
