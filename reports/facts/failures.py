"""Failures and alerts of the week: rejected, unknown and cancelled orders, paper orders that expired or
were cancelled, failed / blocked / skipped runs, and the trading alerts (fill notices left out)."""

from __future__ import annotations

import datetime as dt

from accounts.models import BrokerAccount
from market.krx import SEOUL
from market.models import PaperOrder, PaperOrderStatus
from orders.models import AlertKind, Order, OrderStatus, TradingAlert, WeeklyRun
from strategies.models import StrategyConfig

from .common import JOB_LABELS, RUN_STATUS_LABELS, SIDE_LABELS, WeekWindow

MAX_FAILURES = 20

ORDER_STATUS_LABELS = {
    "pending": "대기", "submitted": "접수", "accepted": "확인", "partially_filled": "일부 체결", "filled": "체결",
    "rejected": "거부", "cancelled": "취소", "unknown": "결과 미확인",
}
ALERT_LABELS = {
    AlertKind.POSITION_MISMATCH: "브로커 잔고 불일치", AlertKind.ORDER_REJECTED: "주문 거부",
    AlertKind.ORDER_UNKNOWN: "주문 결과 미확인", AlertKind.RECONCILE_FAILED: "주문 대사 실패",
    AlertKind.JOB_FAILED: "작업 실패", AlertKind.RISK_BLOCKED: "위험 한도로 차단",
}


def failure_facts(accounts: list[BrokerAccount], configs: list[StrategyConfig], window: WeekWindow,
                  names: dict[str, str]) -> dict:
    start = dt.datetime.combine(window.monday, dt.time.min, tzinfo=SEOUL)
    end = dt.datetime.combine(window.sunday + dt.timedelta(days=1), dt.time.min, tzinfo=SEOUL)
    bad_orders = (
        Order.objects.filter(broker_account__in=accounts, trading_date__range=(window.monday, window.sunday))
        .filter(status__in=(OrderStatus.REJECTED, OrderStatus.UNKNOWN, OrderStatus.CANCELLED))
        .order_by("trading_date", "pk")
    )
    failed_runs = WeeklyRun.objects.filter(
        config__in=configs, week_start=window.monday, status__in=("failed", "blocked", "skipped"),
    ).select_related("config").order_by("trading_date", "pk")
    alerts = TradingAlert.objects.filter(
        account__in=accounts, created_at__gte=start, created_at__lt=end,
    ).exclude(kind=AlertKind.FILLED).order_by("created_at", "pk")
    unfilled_paper = PaperOrder.objects.filter(
        account__broker_account__in=accounts, trading_date__range=(window.monday, window.sunday),
        status__in=(PaperOrderStatus.CANCELLED, PaperOrderStatus.EXPIRED),
    ).order_by("trading_date", "pk")
    ours = set(bad_orders.values_list("client_order_id", flat=True))
    return {
        "rejected_orders": [
            {"date": o.trading_date.isoformat(), "code": o.code, "name": names.get(o.code, ""),
             "side": SIDE_LABELS.get(o.side, o.side), "quantity": o.quantity,
             "status": ORDER_STATUS_LABELS.get(o.status, o.status), "message": o.error_message}
            for o in bad_orders[:MAX_FAILURES]
        ],
        "unfilled_paper_orders": [
            {"date": o.trading_date.isoformat(), "code": o.code, "name": names.get(o.code, ""),
             "side": SIDE_LABELS.get(o.side, o.side), "quantity": int(o.quantity),
             "status": "만료" if o.status == PaperOrderStatus.EXPIRED else "취소"}
            for o in unfilled_paper[:MAX_FAILURES] if not o.client_order_id or o.client_order_id not in ours
        ],
        "runs": [
            {"date": r.trading_date.isoformat(), "strategy": r.config.name, "job": JOB_LABELS.get(r.job, r.job),
             "status": RUN_STATUS_LABELS.get(r.status, r.status), "reason": r.reason}
            for r in failed_runs[:MAX_FAILURES]
        ],
        "alerts": [
            {"date": a.created_at.astimezone(SEOUL).date().isoformat(), "kind": ALERT_LABELS.get(a.kind, a.kind),
             "message": a.message, "resolved": a.resolved_at is not None}
            for a in alerts[:MAX_FAILURES]
        ],
    }
