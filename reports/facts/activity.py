"""Who has a week to report, and whether a week's facts say anything."""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.db.models import Q

from accounts.models import BrokerAccount
from market.analysis_service import parse_week
from market.krx import SEOUL
from market.models import PaperOrder
from orders.models import Order, TradingAlert, WeeklyRun

from .trades import Book, executions_for


def users_with_activity(week: str | dt.date):
    """Users with something to report for the week: executions, orders, runs or alerts in it, or
    positions held through it (an open position of one of their strategies)."""
    monday = parse_week(week)
    sunday = monday + dt.timedelta(days=6)
    start = dt.datetime.combine(monday, dt.time.min, tzinfo=SEOUL)
    end = dt.datetime.combine(sunday + dt.timedelta(days=1), dt.time.min, tzinfo=SEOUL)
    ids: set[int] = set()
    ids |= set(Order.objects.filter(trading_date__range=(monday, sunday)).values_list("broker_account__owner_id", flat=True))
    ids |= set(WeeklyRun.objects.filter(week_start=monday).values_list("config__owner_id", flat=True))
    ids |= set(
        PaperOrder.objects.filter(trading_date__range=(monday, sunday))
        .values_list("account__broker_account__owner_id", flat=True)
    )
    ids |= set(
        TradingAlert.objects.filter(created_at__gte=start, created_at__lt=end, account__isnull=False)
        .values_list("account__owner_id", flat=True)
    )
    # Positions held into the week: any execution before it on an account whose books are not flat.
    for account in BrokerAccount.objects.exclude(owner_id__in=ids).filter(
        Q(orders__isnull=False) | Q(paper_account__orders__isnull=False)
    ).distinct():
        book = Book()
        for execution in executions_for(account):
            if execution.day >= monday:
                break
            book.apply(execution)
        if book.quantity:
            ids.add(account.owner_id)
    return get_user_model().objects.filter(pk__in=ids).order_by("pk")


def has_activity(facts: dict) -> bool:
    return bool(
        facts["trades"] or facts["positions_before"] or facts["positions_after"]
        or any(s["runs"] for s in facts["strategies"]) or facts["failures"]["count"]
    )
