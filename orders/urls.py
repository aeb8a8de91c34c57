from django.urls import path

from . import views

app_name = "orders"

urlpatterns = [
    path("", views.index, name="index"),
    path("trading-control/", views.trading_control, name="trading_control"),
    path("alerts/<int:pk>/resolve/", views.resolve_alert, name="resolve_alert"),
    path("alerts/<int:pk>/decide/", views.decide_unknown_order, name="decide_unknown_order"),
]
