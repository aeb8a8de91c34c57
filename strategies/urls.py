from django.urls import path

from . import guide_views, views, walk_forward_views

app_name = "strategies"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.config_create, name="config_create"),
    path("<int:pk>/", views.config_edit, name="config_edit"),
    path("<int:pk>/active/", views.config_active, name="config_active"),
    path("<int:pk>/delete/", views.config_delete, name="config_delete"),
    path("params/", views.param_fields, name="param_fields"),
    path("guide/", guide_views.guide, name="guide"),
    path("backtests/", views.backtests, name="backtests"),
    path("backtests/compare/", views.compare, name="compare"),
    path("backtests/<int:pk>/", views.run_detail, name="run_detail"),
    path("backtests/<int:pk>/status/", views.run_status, name="run_status"),
    path("sweeps/new/", views.sweep_create, name="sweep_create"),
    path("sweeps/<int:pk>/", views.sweep_detail, name="sweep_detail"),
    path("sweeps/<int:pk>/results/", views.sweep_results, name="sweep_results"),
    path("sweeps/<int:pk>/sets/<int:index>/backtest/", views.sweep_set_backtest, name="sweep_set_backtest"),
    path("walk-forward/new/", walk_forward_views.walk_forward_create, name="walk_forward_create"),
    path("walk-forward/<int:pk>/", walk_forward_views.walk_forward_detail, name="walk_forward_detail"),
    path("walk-forward/<int:pk>/results/", walk_forward_views.walk_forward_results, name="walk_forward_results"),
]
