from django.urls import path

from . import views

app_name = "market"

urlpatterns = [
    path("", views.index, name="index"),
    path("broker-accounts/<int:pk>/connection-test/", views.connection_test, name="connection_test"),
]
