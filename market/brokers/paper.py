"""PaperBroker: the gateway without a network. Orders fill from the stored daily bars; cash,
holdings and orders live in the database (PaperAccount, PaperPosition, PaperOrder).

Fill rules (daily bars hold only open, high, low and close, so these are the honest choices):
- An order belongs to the trading day it is placed on (or the next one, when placed after the
  close or on a holiday).
- A market order placed before 12:00 fills at that day's open, one placed from 12:00 at its close.
- A limit buy fills at that reference price when it is at or below the limit, else at the limit when
  the day's low reached it; a limit sell mirrors this with the high. Otherwise it expires at the end
  of the day, as KRX day orders do.
- Until the day's bar is stored the order stays open; it fills when a later call finds the bar.
- Commission on both sides and the securities-transaction tax on sells come from market.krx.fees;
  KRX rules (tick, ±30% band, quantity, session) are checked before an order is accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Min, Sum
from django.utils import timezone

from accounts.models import BrokerAccount
from market.gateway import (
    Balance,
    BrokerError,
    BuyableAmount,
    DailyBar,
    DailyOrder,
    OrderReceipt,
    OrderRefused,
    Quote,
)
from market.kis.models import BalanceSummary, Holding
from market.kis.realtime.records import FillNotice
from market.krx import (
    SEOUL,
    commission_for,
    is_trading_day,
    next_trading_day,
    price_limits,
    sell_tax_for_trade,
    session_open_close,
    tick_size_for,
    validate_order,
)
from market.models import DailyBar as StoredBar
from market.models import Instrument, IntradayBar, PaperAccount, PaperOrder, PaperOrderStatus, PaperPosition
from market.streaming.signals import fill_notice_received

LIMIT = "00"
MARKET = "01"
SUPPORTED_ORDER_TYPES = (LIMIT, MARKET)
MIDDAY = dt.time(12, 0)
PAPER_ORG_NO = "00950"  # stands in for KIS's KRX_FWDG_ORD_ORGNO


def _commission(amount: int) -> int:
    return commission_for(amount, settings.COMMISSION_RATE or None)


class PaperBroker:
    mode = "paper"

    def __init__(self, broker_account: BrokerAccount, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.broker_account = broker_account
        self._clock = clock or timezone.now

    # --- helpers ----------------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return self._clock().astimezone(SEOUL)

    def _account(self, lock: bool = False) -> PaperAccount:
        account, _ = PaperAccount.objects.get_or_create(broker_account=self.broker_account)
        if lock:
            account = PaperAccount.objects.select_for_update().get(pk=account.pk)
        return account

    @staticmethod
    def _instrument(code: str) -> Instrument:
        try:
            return Instrument.objects.get(code=code)
        except Instrument.DoesNotExist:
            raise BrokerError(f"알 수 없는 종목코드입니다: {code}", code="UNKNOWN_CODE") from None

    @staticmethod
    def _bar(code: str, day: dt.date) -> StoredBar | None:
        return StoredBar.objects.filter(instrument__code=code, date=day).first()

    @staticmethod
    def _last_close_before(code: str, day: dt.date) -> int | None:
        bar = StoredBar.objects.filter(instrument__code=code, date__lt=day).order_by("-date").only("close").first()
        return bar.close if bar else None

    def _trading_day_for(self, moment: dt.datetime) -> dt.date:
        day = moment.date()
        if is_trading_day(day) and moment < session_open_close(day)[1]:
            return day
        return next_trading_day(day)

    # --- orders -----------------------------------------------------------------------------------
    def place_order(
        self, side: str, code: str, quantity: int, price: int = 0, order_type: str = LIMIT,
        *, client_order_id: str = "",
    ) -> OrderReceipt:
        if order_type not in SUPPORTED_ORDER_TYPES:
            raise OrderRefused([f"모의 브로커는 지정가(00)와 시장가(01) 주문만 지원합니다: {order_type}"])
        instrument = self._instrument(code)
        now = self._now()
        trading_day = self._trading_day_for(now)
        prev_close = self._last_close_before(code, trading_day)
        # No session check: an order placed outside the session belongs to the next trading day,
        # as a pre-market order would.
        reasons = validate_order(
            side, order_type, quantity, price if order_type == LIMIT else None, prev_close, market=instrument.market,
        )
        if reasons:
            raise OrderRefused(reasons, code="KRX_RULE")
        with transaction.atomic():
            account = self._account(lock=True)
            if side == "buy":
                estimate = price if order_type == LIMIT else self._market_estimate(code, trading_day, now, prev_close)
                cost = estimate * quantity
                if cost + _commission(cost) > account.cash:
                    raise OrderRefused(
                        [f"주문가능금액을 초과했습니다: 필요 {cost:,}원, 가능 {account.cash:,}원"], code="INSUFFICIENT_CASH"
                    )
            else:
                sellable = self._sellable_quantity(account, code)
                if quantity > sellable:
                    raise OrderRefused(
                        [f"매도가능수량을 초과했습니다: 주문 {quantity:,}주, 가능 {sellable:,}주"], code="INSUFFICIENT_QTY"
                    )
            order_no = f"{account.next_order_no:010d}"
            PaperAccount.objects.filter(pk=account.pk).update(next_order_no=F("next_order_no") + 1)
            order = PaperOrder.objects.create(
                account=account, order_no=order_no, client_order_id=client_order_id, code=code, side=side,
                order_type=order_type, quantity=quantity, price=price if order_type == LIMIT else 0,
                trading_date=trading_day, placed_at=now,
            )
            self._match(order, account, now)
        return OrderReceipt(order_no=order_no, org_no=PAPER_ORG_NO, order_time=now.time().replace(microsecond=0),
                            msg_cd="PAPER", msg1="모의 주문이 접수되었습니다.")

    def _market_estimate(self, code: str, trading_day: dt.date, now: dt.datetime, prev_close: int | None) -> int:
        """The price a market buy is checked against: its fill price when the day's bar is already
        stored (the open before 12:00, else the close — exactly what `_match` charges), else the
        previous close. Checking a known fill against the previous close would refuse a buy sized
        with all the cash at the open whenever the stock opened below the previous close."""
        bar = self._bar(code, trading_day)
        if bar is None:
            current = self._simulated_price(code, trading_day, now)
            return current or prev_close or 0
        return bar.open if now.time() < MIDDAY or now.date() < bar.date else bar.close

    def cancel_order(self, order_no: str, org_no: str, quantity: int | None = None) -> OrderReceipt:
        with transaction.atomic():
            account = self._account(lock=True)
            self._sync(account)
            order = PaperOrder.objects.filter(account=account, order_no=order_no).first()
            if order is None:
                raise BrokerError(f"주문번호를 찾을 수 없습니다: {order_no}", code="NOT_FOUND")
            if order.status != PaperOrderStatus.OPEN:
                raise BrokerError(f"이미 처리된 주문입니다: {order_no} ({order.status})", code="NOT_OPEN")
            order.status = PaperOrderStatus.CANCELLED
            order.save(update_fields=["status"])
        now = self._now()
        return OrderReceipt(order_no=order_no, org_no=org_no, order_time=now.time().replace(microsecond=0),
                            msg_cd="PAPER", msg1="모의 주문이 취소되었습니다.")

    def _sellable_quantity(self, account: PaperAccount, code: str) -> int:
        held = PaperPosition.objects.filter(account=account, code=code).values_list("quantity", flat=True).first() or 0
        pending = (
            PaperOrder.objects.filter(account=account, code=code, side="sell", status=PaperOrderStatus.OPEN)
            .aggregate(total=Sum("quantity"))["total"] or 0
        )
        return held - pending

    def _sync(self, account: PaperAccount) -> None:
        now = self._now()
        for order in PaperOrder.objects.filter(account=account, status=PaperOrderStatus.OPEN).order_by("pk"):
            self._match(order, account, now)

    def _fill_price(self, order: PaperOrder, bar: StoredBar) -> int | None:
        morning = order.placed_at.astimezone(SEOUL).time() < MIDDAY or order.placed_at.astimezone(SEOUL).date() < bar.date
        reference = bar.open if morning else bar.close
        if order.order_type == MARKET:
            return reference
        if order.side == "buy":
            if reference <= order.price:
                return reference
            return order.price if bar.low <= order.price else None
        if reference >= order.price:
            return reference
        return order.price if bar.high >= order.price else None

    # --- the simulated tape -------------------------------------------------------------------------
    # Before the day's bar is stored, the streamer's simulated stream of the demo market (1-minute candles
    # of source "sim", stored while `stream_market` runs) is that day's tape: an order fills at the price
    # the pages show, as a real market order would, instead of waiting for the day's close to be imported.
    # Without a running streamer there is no tape and orders wait for the day's bar, as before.
    @staticmethod
    def _simulated_price(code: str, day: dt.date, moment: dt.datetime) -> int | None:
        """The last simulated price of `code` at `moment` on trading day `day`, if the tape has one."""
        start = dt.datetime.combine(day, dt.time(0), tzinfo=SEOUL)
        return (IntradayBar.objects.filter(source=IntradayBar.Source.SIM, code=code, minute__gte=start,
                                           minute__lte=moment).order_by("-minute")
                .values_list("close", flat=True).first())

    def _simulated_tape(self, order: PaperOrder, now: dt.datetime) -> tuple[int, int, int] | None:
        """(price when the order was placed, lowest and highest price since) on the order's trading day's
        simulated tape, or None when there is no tape for it yet."""
        day = order.trading_date
        placed_minute = order.placed_at.astimezone(SEOUL).replace(second=0, microsecond=0)
        bars = IntradayBar.objects.filter(source=IntradayBar.Source.SIM, code=order.code,
                                          minute__gte=dt.datetime.combine(day, dt.time(0), tzinfo=SEOUL),
                                          minute__lt=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0),
                                                                         tzinfo=SEOUL))
        reference = self._simulated_price(order.code, day, order.placed_at)
        since = bars.filter(minute__gte=placed_minute, minute__lte=now).aggregate(low=Min("low"), high=Max("high"))
        if reference is None:  # placed before the tape began: the tape's first price after placement
            reference = bars.filter(minute__gte=placed_minute, minute__lte=now).order_by("minute") \
                .values_list("open", flat=True).first()
        if reference is None:
            return None
        return reference, since["low"] or reference, since["high"] or reference

    @staticmethod
    def _tape_fill_price(order: PaperOrder, reference: int, low: int, high: int) -> int | None:
        if order.order_type == MARKET:
            return reference
        if order.side == "buy":
            if reference <= order.price:
                return reference
            return order.price if low <= order.price else None
        if reference >= order.price:
            return reference
        return order.price if high >= order.price else None

    def _match(self, order: PaperOrder, account: PaperAccount, now: dt.datetime) -> None:
        """Fill or expire one open order; called inside a transaction holding the account row."""
        bar = self._bar(order.code, order.trading_date)
        day_over = now >= session_open_close(order.trading_date)[1]
        if bar is not None:
            fill_price = self._fill_price(order, bar)
        else:
            tape = self._simulated_tape(order, now)
            if tape is None:
                if day_over and now.date() > order.trading_date + dt.timedelta(days=7):
                    order.status = PaperOrderStatus.EXPIRED  # no bar a week later: suspended, never traded
                    order.save(update_fields=["status"])
                return
            fill_price = self._tape_fill_price(order, *tape)
        if fill_price is None:
            if day_over:
                order.status = PaperOrderStatus.EXPIRED
                order.save(update_fields=["status"])
            return
        account.refresh_from_db(fields=["cash"])
        amount = fill_price * order.quantity
        commission = _commission(amount)
        tax = 0
        position, _ = PaperPosition.objects.get_or_create(account=account, code=order.code)
        if order.side == "buy":
            if amount + commission > account.cash:
                order.status = PaperOrderStatus.CANCELLED  # KIS would have refused it; nothing is bought
                order.save(update_fields=["status"])
                return
            account.cash -= amount + commission
            position.quantity += order.quantity
            position.cost += amount
        else:
            market = Instrument.objects.filter(code=order.code).values_list("market", flat=True).first() or "KOSPI"
            tax = sell_tax_for_trade(amount, market, order.trading_date)
            sold_cost = position.cost * order.quantity // position.quantity if position.quantity else 0
            account.cash += amount - commission - tax
            position.quantity -= order.quantity
            position.cost -= sold_cost
        account.save(update_fields=["cash"])
        if position.quantity:
            position.save()
        else:
            position.delete()
        order.status = PaperOrderStatus.FILLED
        order.filled_quantity = order.quantity
        order.fill_price = fill_price
        order.commission, order.tax = commission, tax
        order.filled_at = max(order.placed_at, session_open_close(order.trading_date)[0])
        order.save()
        self._notify_fill(order)

    def _notify_fill(self, order: PaperOrder) -> None:
        """Send `fill_notice_received` for a fill, as KIS's WebSocket notifies one (H0STCNI0), once the
        fill's transaction commits (never for a fill rolled back). Listeners (the orders app) must not
        break the paper broker: a failing one is logged (send_robust), and nothing listening is fine."""
        name = Instrument.objects.filter(code=order.code).values_list("name", flat=True).first() or ""
        moment = order.filled_at.astimezone(SEOUL)
        notice = FillNotice(
            customer_id="", account_no="", order_no=order.order_no, original_order_no="", side=order.side,
            correction="0", order_kind=order.order_type, code=order.code, quantity=order.filled_quantity,
            price=order.fill_price, time=moment.time().replace(microsecond=0), rejected=False, is_fill=True,
            acceptance="2", branch_no=PAPER_ORG_NO, order_quantity=order.quantity, order_price=order.price,
            name=name,
        )
        account_id = self.broker_account.pk

        def send() -> None:
            fill_notice_received.send_robust(sender=PaperBroker, account_id=account_id, notice=notice,
                                             source="paper", moment=moment)

        transaction.on_commit(send, robust=True)

    # --- reads ------------------------------------------------------------------------------------
    def get_daily_orders(self, start: dt.date, end: dt.date) -> list[DailyOrder]:
        with transaction.atomic():
            account = self._account(lock=True)
            self._sync(account)
        names = dict(Instrument.objects.values_list("code", "name"))
        rows = PaperOrder.objects.filter(account=account, trading_date__range=(start, end)).order_by("pk")
        return [
            DailyOrder(
                order_date=row.trading_date, order_no=row.order_no, original_order_no="", branch_no=PAPER_ORG_NO,
                side=row.side, code=row.code, name=names.get(row.code, ""), quantity=row.quantity, price=row.price,
                order_time=row.placed_at.astimezone(SEOUL).time().replace(microsecond=0),
                filled_quantity=row.filled_quantity, average_fill_price=Decimal(row.fill_price),
                filled_amount=row.fill_price * row.filled_quantity,
                cancelled=row.status in (PaperOrderStatus.CANCELLED, PaperOrderStatus.EXPIRED),
                cancel_confirmed_quantity=row.quantity - row.filled_quantity
                if row.status != PaperOrderStatus.OPEN else 0,
                remaining_quantity=row.quantity - row.filled_quantity if row.status == PaperOrderStatus.OPEN else 0,
                rejected_quantity=0, order_type=row.order_type,
                order_type_name="지정가" if row.order_type == LIMIT else "시장가", exchange="KRX",
            )
            for row in rows
        ]

    def get_balance(self) -> Balance:
        with transaction.atomic():
            account = self._account(lock=True)
            self._sync(account)
        today = self._now().date()
        names = dict(Instrument.objects.values_list("code", "name"))
        holdings = []
        for position in PaperPosition.objects.filter(account=account).order_by("code"):
            last = StoredBar.objects.filter(instrument__code=position.code, date__lte=today).order_by("-date").first()
            price = last.close if last else 0
            value = price * position.quantity
            average = Decimal(position.cost) / position.quantity if position.quantity else Decimal(0)
            holdings.append(Holding(
                code=position.code, name=names.get(position.code, ""), quantity=position.quantity,
                sellable_quantity=self._sellable_quantity(account, position.code), average_price=average,
                purchase_amount=position.cost, current_price=price, evaluation_amount=value,
                profit_amount=value - position.cost,
                profit_rate=(Decimal(value - position.cost) * 100 / position.cost) if position.cost else Decimal(0),
                today_bought=0, today_sold=0,
            ))
        securities = sum(h.evaluation_amount for h in holdings)
        purchase = sum(h.purchase_amount for h in holdings)
        summary = BalanceSummary(
            cash_deposit=account.cash, cash_d1=account.cash, cash_d2=account.cash, securities_evaluation=securities,
            total_evaluation=account.cash + securities, net_assets=account.cash + securities, purchase_total=purchase,
            evaluation_total=securities, profit_total=securities - purchase, today_fees_and_tax=0,
        )
        return Balance(holdings=holdings, summary=summary, pages=1)

    def get_buyable(self, code: str, price: int | None = None) -> BuyableAmount:
        account = self._account()
        unit = price or self.get_quote(code).price
        quantity = 0
        if unit > 0:
            quantity = account.cash // unit
            while quantity and quantity * unit + _commission(quantity * unit) > account.cash:
                quantity -= 1
        return BuyableAmount(
            code=code, orderable_cash=account.cash, price_used=unit, cash_only_amount=quantity * unit,
            cash_only_quantity=quantity, max_amount=quantity * unit, max_quantity=quantity,
        )

    def get_quote(self, code: str) -> Quote:
        instrument = self._instrument(code)
        last_two = list(StoredBar.objects.filter(instrument=instrument, date__lte=self._now().date()).order_by("-date")[:2])
        if not last_two:
            raise BrokerError(f"{code} 종목의 시세가 없습니다. 먼저 시세를 가져오세요.", code="NO_PRICE")
        bar = last_two[0]
        base = last_two[1].close if len(last_two) > 1 else bar.open
        lower, upper = price_limits(base)
        change = bar.close - base
        return Quote(
            code=code, price=bar.close, change=change, change_sign="2" if change > 0 else "5" if change < 0 else "3",
            change_rate=(Decimal(change) * 100 / base).quantize(Decimal("0.01")) if base else Decimal(0),
            open=bar.open, high=bar.high, low=bar.low, volume=bar.volume, traded_value=bar.traded_value or 0,
            base_price=base, upper_limit=upper, lower_limit=lower, tick_size=tick_size_for(bar.close), lot_size=1,
            status_code="00", temporarily_halted=False, market_warning_code="00", vi_code="N",
            market_name=instrument.market, sector_name=instrument.sector,
        )

    def get_daily_bars(self, code: str, start: dt.date, end: dt.date) -> list[DailyBar]:
        rows = StoredBar.objects.filter(instrument__code=code, date__range=(start, end)).order_by("date")
        return [
            DailyBar(date=r.date, open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume,
                     traded_value=r.traded_value or 0, ex_rights_code="", split_ratio=Decimal(0), no_trade=False)
            for r in rows
        ]
