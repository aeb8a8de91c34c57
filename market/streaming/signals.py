"""Signals from the real-time path to the apps to the right of market (which market may not import).

``fill_notice_received(sender, account_id: int, notice: market.kis.realtime.records.FillNotice,
source: "kis" | "paper")``: an own-order notice arrived (KIS WebSocket H0STCNI0/H0STCNI9, or the paper
broker's fill). Sent outside any transaction, from the streamer or after the paper broker's commit; the
orders app applies it (orders.fill_notices) through the reconciliation's service.
"""

from django.dispatch import Signal

fill_notice_received = Signal()
