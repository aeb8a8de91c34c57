"""Which broker order is ours, when the broker's answer to our order was lost.

KIS has no client order id (../shared/guides/reliability.md §0): the only identity of an order is the
number in the answer we did not get. So an order whose outcome is unknown is looked for in the
broker's daily orders by what it was — trading date, code, side, quantity, limit price — and by
*when* it was in flight. Two facts make that hard, and both were seen:

- the broker's clock is not ours: an order accepted 5 s "before" we stored it (the broker's clock
  behind ours) is still ours, so the time test has a tolerance both ways
  (`settings.ORDERS_BROKER_CLOCK_TOLERANCE_SECONDS`);
- we are not the account's only client: an identical order placed by HTS or the mobile app is not
  ours, and must not be adopted just because it looks the same.

The rule (`match_orders`): a broker row is adopted for one of our orders only when it has the same
attributes, its time falls inside that order's in-flight window widened by the tolerance, and the
pairing is unique both ways (the row fits no other of our unresolved orders, and the order has no
other fitting row). Anything else is for a person: same-looking rows are reported as candidates,
and an order with candidates is never concluded "not received".

Pure: plain values in, plain values out; no Django.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from market.kis.models import DailyOrder

SEOUL = ZoneInfo("Asia/Seoul")
LIMIT = "00"


@dataclass(frozen=True)
class Intent:
    """One of our orders whose broker order number is not known."""

    key: int  # our order's id
    trading_date: dt.date
    code: str
    side: str
    quantity: int
    order_type: str
    price: int  # limit price; 0 for market orders
    window_start: dt.datetime  # aware: the earliest broker time the order can carry
    window_end: dt.datetime  # aware: the latest


@dataclass
class Match:
    """What the broker's rows say about one intent."""

    row: DailyOrder | None = None  # adopted: the one row that is this order
    in_window: list[DailyOrder] = field(default_factory=list)  # rows that fit attributes and time
    lookalikes: list[DailyOrder] = field(default_factory=list)  # same attributes, any time that day

    @property
    def ambiguous(self) -> bool:
        """Rows fit, but not one row to this one order: a person decides."""
        return self.row is None and bool(self.in_window)

    @property
    def candidates(self) -> list[DailyOrder]:
        """The rows a person may pick from: those in the window first, then the other look-alikes."""
        seen = {row.order_no for row in self.in_window}
        return self.in_window + [row for row in self.lookalikes if row.order_no not in seen]


def in_flight_window(sent_at: dt.datetime, answered_at: dt.datetime | None, *, tolerance: dt.timedelta,
                     longest_request: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
    """From the moment the request could leave to the moment its answer was due, each end widened by
    the clock tolerance. Without `answered_at` (the process died in the request) the request may have
    lasted up to `longest_request`."""
    end = answered_at if answered_at is not None and answered_at >= sent_at else sent_at + longest_request
    return sent_at - tolerance, end + tolerance


def row_time(row: DailyOrder, trading_date: dt.date) -> dt.datetime | None:
    """The broker's order time as an aware Seoul datetime, or None when the broker left it blank."""
    if row.order_time is None:
        return None
    return dt.datetime.combine(row.order_date or trading_date, row.order_time, tzinfo=SEOUL)


def same_attributes(intent: Intent, row: DailyOrder) -> bool:
    """The row is an original order (not a revise/cancel) with our order's date, code, side, quantity
    and, for a limit order, price."""
    if row.original_order_no.strip("0") or row.code != intent.code or row.side != intent.side:
        return False
    if row.quantity != intent.quantity:
        return False
    if row.order_date is not None and row.order_date != intent.trading_date:
        return False
    return not (intent.order_type == LIMIT and row.price != intent.price)


def fits_window(intent: Intent, row: DailyOrder) -> bool:
    """A blank broker time cannot rule the row out."""
    moment = row_time(row, intent.trading_date)
    return moment is None or intent.window_start <= moment <= intent.window_end


def match_orders(intents: Sequence[Intent], rows: Iterable[DailyOrder]) -> dict[int, Match]:
    """Pair each intent with at most one of `rows` (rows not already known to be one of our orders),
    by the rule in the module docstring. Every intent gets a Match."""
    rows = list(rows)
    matches: dict[int, Match] = {}
    fitting_intents: dict[str, list[int]] = {}  # row order_no -> intents it fits
    for intent in intents:
        match = Match(lookalikes=[row for row in rows if same_attributes(intent, row)])
        match.in_window = [row for row in match.lookalikes if fits_window(intent, row)]
        for row in match.in_window:
            fitting_intents.setdefault(row.order_no, []).append(intent.key)
        matches[intent.key] = match
    for match in matches.values():
        if len(match.in_window) == 1 and len(fitting_intents[match.in_window[0].order_no]) == 1:
            match.row = match.in_window[0]
    return matches


def describe_row(row: DailyOrder, trading_date: dt.date) -> dict:
    """A candidate as shown to the owner (and stored in the alert's details)."""
    moment = row_time(row, trading_date)
    return {
        "order_no": row.order_no, "time": moment.strftime("%H:%M:%S") if moment else "",
        "code": row.code, "side": row.side, "quantity": row.quantity, "price": row.price,
        "filled_quantity": row.filled_quantity, "cancelled": row.cancelled,
    }
