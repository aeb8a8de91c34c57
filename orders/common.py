"""What the orders modules share: the broker of an account on the job's clock, commission, the Seoul
clock, the crash hook and the configs the auto-trader runs."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from accounts.models import BrokerAccount, BrokerMode
from market.brokers import broker_for
from market.krx import DEFAULT_COMMISSION_RATE, SEOUL, commission_for, is_trading_day, session_open_close
from strategies.models import StrategyConfig

STALE_AFTER = dt.timedelta(minutes=10)  # a run `running` longer than this was interrupted


def checkpoint(name: str, subject: object) -> None:
    """A no-op hook at each step where a crash matters; tests raise from it to simulate a kill."""


def commission_rate() -> Decimal:
    return Decimal(str(settings.COMMISSION_RATE)) if settings.COMMISSION_RATE else DEFAULT_COMMISSION_RATE


def commission(amount: int) -> int:
    return commission_for(amount, settings.COMMISSION_RATE or None)


def get_broker(account: BrokerAccount, now: dt.datetime):
    """The account's gateway; the paper broker runs on the job's clock so a replayed date fills right."""
    if account.mode == BrokerMode.PAPER:
        return broker_for(account, clock=lambda: now)
    return broker_for(account)


def jsonable(value) -> dict:
    if hasattr(value, "__dataclass_fields__"):
        value = asdict(value)
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def seoul(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(SEOUL)


def before_open(now: dt.datetime, trading_date: dt.date) -> bool:
    """`now` is on `trading_date` (Seoul) before its regular session opens (10:00 on late-open days)."""
    local = seoul(now)
    return local.date() == trading_date and is_trading_day(trading_date) and local < session_open_close(trading_date)[0]


def active_configs():
    return StrategyConfig.objects.filter(is_active=True, broker_account__isnull=False).order_by("pk")
