from django.urls import path

from . import views

app_name = "reports"

urlpatterns = [
    path("", views.index, name="index"),
    path("<str:week>/", views.detail, name="detail"),
    path("<str:week>/regenerate/", views.regenerate, name="regenerate"),
]
