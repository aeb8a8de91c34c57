"""Reads of accounts data for views and the API. Every read is scoped to the requesting user."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import BrokerAccount


def broker_accounts_for(user) -> QuerySet[BrokerAccount]:
    """The accounts a user may see: their own; staff see every account (still masked)."""
    if not user.is_authenticated:
        return BrokerAccount.objects.none()
    queryset = BrokerAccount.objects.select_related("owner")
    return queryset if user.is_staff else queryset.filter(owner=user)


def broker_account_for(user, pk: int) -> BrokerAccount:
    """One account the user may see, or 404 (never 403: another user's id reveals nothing)."""
    return get_object_or_404(broker_accounts_for(user), pk=pk)


def default_broker_account(user) -> BrokerAccount | None:
    return BrokerAccount.objects.filter(owner=user).order_by("-is_default", "pk").first()
