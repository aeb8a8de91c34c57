from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("broker-accounts/", views.broker_account_list, name="broker_account_list"),
    path("broker-accounts/new/", views.broker_account_create, name="broker_account_create"),
    path("broker-accounts/<int:pk>/", views.broker_account_edit, name="broker_account_edit"),
    path("broker-accounts/<int:pk>/delete/", views.broker_account_delete, name="broker_account_delete"),
    path("security/", views.security_activity, name="security_activity"),
    path("security/export.csv", views.security_activity_export, name="security_activity_export"),
]
