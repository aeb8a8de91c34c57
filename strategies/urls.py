from django.urls import path

from . import views

app_name = "strategies"

urlpatterns = [
    path("", views.index, name="index"),
]
