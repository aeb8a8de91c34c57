"""Orders (§4.1-4.2): cash orders, revise and cancel -- sent once, never again after an ambiguous failure.

KIS orders carry no client order id and no idempotency key: the only identity is the order number in the
*answer*. A resend after a lost answer can therefore create a second live order, so an order never goes
through the read retries (``KisTransport.with_read_retries``); ``_send_attempts`` below decides, failure by
failure, between "definitely not sent, may retry" and "outcome unknown, reconcile first". Pure Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from . import deadline
from .auth import KisAuth
from .checks import check_code, check_positive_int
from .errors import (
    KisDeadlineExceeded,
    KisError,
    KisNetworkError,
    KisOrderOutcomeUnknown,
    KisProtocolError,
    KisRateLimited,
    KisServerError,
    KisTokenExpired,
)
from .models import OrderReceipt, lower_keys, normalize_branch_no, normalize_order_no, parse_text, parse_time
from .transport import KisResponse, KisTransport, json_bytes, logger

ORDER_CASH_PATH = "/uapi/domestic-stock/v1/trading/order-cash"
ORDER_REVISE_CANCEL_PATH = "/uapi/domestic-stock/v1/trading/order-rvsecncl"

# ORD_DVSN codes that carry no price: ORD_UNPR must be "0" (§4.1).
PRICELESS_ORDER_TYPES = frozenset({"01", "03", "04", "05", "06", "13", "14", "15", "16"})
# ORD_DVSN codes that need a positive limit price.
PRICED_ORDER_TYPES = frozenset({"00", "02", "07", "11", "12", "22"})


class KisOrders:
    """Order TRs of one account."""

    def __init__(
        self,
        transport: KisTransport,
        auth: KisAuth,
        account_no: str,
        product_code: str,
        *,
        max_retries: int,
        time_reserve: float,
        use_hashkey: bool,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None],
    ) -> None:
        self._transport = transport
        self._auth = auth
        self._account_no = account_no
        self._product_code = product_code
        self._max_retries = max_retries
        # Under a deadline, an order is sent only while this much of it is left: a send must not start
        # with too little time to read its answer (that would turn a "not sent" into an "unknown").
        self._time_reserve = time_reserve
        self._use_hashkey = use_hashkey
        self._clock = clock
        self._sleep = sleep

    def place_order(self, side: str, code: str, quantity: int, price: int = 0, order_type: str = "00",
                    exchange: str = "KRX") -> OrderReceipt:
        """Send a cash order once. ``side`` is "buy" or "sell"; ``order_type`` is KIS ORD_DVSN ("00" limit,
        "01" market, ...). Raises KisApiError on a refusal, KisOrderOutcomeUnknown when the answer was lost."""
        side = side.lower()
        if side not in ("buy", "sell"):
            raise ValueError("side must be 'buy' or 'sell'")
        code = check_code(code)
        quantity = check_positive_int(quantity, "quantity")
        unit_price = check_order_price(order_type, price)
        exchange = self._check_exchange(exchange)
        body = {
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "PDNO": code,
            "ORD_DVSN": order_type,
            "ORD_QTY": str(quantity),
            "ORD_UNPR": str(unit_price),
            "EXCG_ID_DVSN_CD": exchange,
        }
        if side == "sell":
            body["SLL_TYPE"] = "01"  # normal sell
        operation = "order_buy" if side == "buy" else "order_sell"
        summary = {"action": "order", "side": side, "code": code, "quantity": quantity, "price": unit_price,
                   "order_type": order_type, "tr_id": self._transport.tr(operation)}
        response = self._send(ORDER_CASH_PATH, operation, body, summary)
        return parse_order_receipt(response, summary, self._transport.redactor.redact)

    def revise_or_cancel(self, org_no: str, original_order_no: str, action: str, quantity: int | None = None,
                         price: int = 0, order_type: str = "00", exchange: str = "KRX") -> OrderReceipt:
        """Revise ("revise") or cancel ("cancel") a live order; ``quantity=None`` means all remaining.

        ``org_no`` is KRX_FWDG_ORD_ORGNO from the order receipt (or ``branch_no`` of a daily-orders row).
        Same send-once rule as ``place_order``."""
        action = action.lower()
        if action not in ("revise", "cancel"):
            raise ValueError("action must be 'revise' or 'cancel'")
        org_no = str(org_no).strip()
        original_order_no = str(original_order_no).strip()
        if not org_no or not original_order_no:
            raise ValueError("org_no and original_order_no are required")
        if quantity is not None:
            quantity = check_positive_int(quantity, "quantity")
        unit_price = check_order_price(order_type, price) if action == "revise" else 0
        exchange = self._check_exchange(exchange)
        body = {
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "KRX_FWDG_ORD_ORGNO": org_no,
            "ORGN_ODNO": original_order_no,
            "ORD_DVSN": order_type,
            "RVSE_CNCL_DVSN_CD": "01" if action == "revise" else "02",
            "ORD_QTY": str(quantity) if quantity is not None else "0",
            "ORD_UNPR": str(unit_price),
            "QTY_ALL_ORD_YN": "Y" if quantity is None else "N",
            "EXCG_ID_DVSN_CD": exchange,
        }
        summary = {"action": action, "original_order_no": original_order_no, "quantity": quantity,
                   "price": unit_price, "order_type": order_type,
                   "tr_id": self._transport.tr("order_revise_cancel")}
        response = self._send(ORDER_REVISE_CANCEL_PATH, "order_revise_cancel", body, summary)
        return parse_order_receipt(response, summary, self._transport.redactor.redact)

    def _send(self, path: str, operation: str, body: dict[str, str], summary: dict[str, Any]) -> KisResponse:
        try:
            return self._send_attempts(path, operation, body, summary)
        except KisDeadlineExceeded as exc:
            # Only ever raised before a request left (market.kis.deadline): this order was not sent.
            logger.warning("KIS order not sent: the caller's %gs deadline passed at %s: %s (app=%s)",
                           exc.seconds, exc.stage, summary, self._transport.log_id)
            raise exc.for_order() from None

    def _send_attempts(self, path: str, operation: str, body: dict[str, str],
                       summary: dict[str, Any]) -> KisResponse:
        """POST an order at most once per definitive refusal, never again after an ambiguous failure.

        Why: the order request has no client order id or idempotency key; the only identity is ODNO in the
        *answer*. If the request may have reached KIS and the answer is lost, KIS may have accepted it, and a
        resend would be a second, independent order. So:
        * read time-out, connection dropped after sending, 5xx other than EGW00201 (including an empty
          msg_cd and gateway time-outs EGW00301/EGW00302), unparsable body, success without ODNO
          -> KisOrderOutcomeUnknown; the caller reconciles through get_daily_orders.
        * retried (at most ``order_max_retries`` times): EGW00201 (the gateway refused the call, it never
          reached the order system) and connection failures before any byte was sent (connect refused or
          connect time-out).
        * EGW00123/EGW00121 (token expired/invalid) are also gateway refusals before processing: the token
          is renewed once and the order resent once, as for every other API call.
        * under a caller's deadline, the POST starts only while ``order_time_reserve`` seconds are left, and
          no retry waits past it: ``KisDeadlineExceeded`` (order not sent). A POST that was sent and whose
          shortened read times out is still KisOrderOutcomeUnknown.
        """
        transport = self._transport
        tr_id = transport.tr(operation)
        payload = json_bytes(body)
        hash_value = transport.hashkey(body) if self._use_hashkey else None
        refusals = 0
        token_refreshed = False
        while True:
            token = self._auth.ensure_token()  # a failure here happens before the order is sent
            headers = transport.api_headers(tr_id, token)
            if hash_value:
                headers["hashkey"] = hash_value
            sent_at = self._clock()
            summary = summary | {"sent_at": sent_at.isoformat()}
            try:
                return transport.exchange("POST", path, tr_id=tr_id, headers=headers, payload=payload,
                                          min_time=self._time_reserve)
            except KisNetworkError as exc:
                if exc.possibly_sent:
                    raise self._outcome_unknown(f"network error after sending: {exc.detail}", exc, summary) from None
                refusals += 1
                if refusals > self._max_retries:
                    raise
                delay = transport.backoff(refusals)
                logger.warning("KIS order not sent (connection failed before sending); retry %d/%d in %.2fs",
                               refusals, self._max_retries, delay)
                deadline.sleep_within(delay, "retry", self._sleep)
            except KisRateLimited:
                refusals += 1
                if refusals > self._max_retries:
                    raise
                delay = transport.backoff(refusals)
                logger.warning("KIS order refused by rate limit (EGW00201); retry %d/%d in %.2fs",
                               refusals, self._max_retries, delay)
                deadline.sleep_within(delay, "retry", self._sleep)
            except KisTokenExpired:
                if token_refreshed:
                    raise
                token_refreshed = True
                self._auth.refresh_after_rejection(token)
            except (KisServerError, KisProtocolError) as exc:
                raise self._outcome_unknown(type(exc).__name__, exc, summary) from None

    def _outcome_unknown(self, reason: str, cause: KisError, summary: dict[str, Any]) -> KisOrderOutcomeUnknown:
        logger.error("KIS order outcome UNKNOWN (%s); do not resend, reconcile first: %s (app=%s)",
                     reason, summary, self._transport.log_id)
        return KisOrderOutcomeUnknown(
            reason=reason, order_summary=summary, http_status=cause.http_status, rt_cd=cause.rt_cd,
            msg_cd=cause.msg_cd, msg1=cause.msg1, tr_id=cause.tr_id, path=cause.path,
        )

    def _check_exchange(self, exchange: str) -> str:
        exchange = exchange.upper()
        if exchange not in ("KRX", "NXT", "SOR"):
            raise ValueError("exchange must be KRX, NXT or SOR")
        if self._transport.mode == "paper" and exchange != "KRX":
            raise ValueError("paper trading accepts KRX only")
        return exchange


def check_order_price(order_type: str, price: int) -> int:
    if not (isinstance(order_type, str) and len(order_type) == 2 and order_type.isdigit()):
        raise ValueError("order_type must be a 2-digit ORD_DVSN code such as '00' or '01'")
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise ValueError("price must be a non-negative int (KRW)")
    if order_type in PRICELESS_ORDER_TYPES:
        return 0  # KIS wants "0" for price-less types
    if order_type in PRICED_ORDER_TYPES and price <= 0:
        raise ValueError(f"order type {order_type} needs a positive price")
    return price


def parse_order_receipt(response: KisResponse, summary: dict[str, Any],
                        redact: Callable[[object], str]) -> OrderReceipt:
    """The receipt of an accepted order; KisOrderOutcomeUnknown for a success without an order number."""
    output = lower_keys(response.data.get("output"))  # order-cash keys are UPPER, rvsecncl lower (§4.1-4.2)
    order_no = parse_text(output.get("odno"))
    context = {"http_status": response.status, "rt_cd": parse_text(response.data.get("rt_cd")),
               "msg_cd": parse_text(response.data.get("msg_cd")),
               "msg1": redact(parse_text(response.data.get("msg1"))),
               "tr_id": summary.get("tr_id")}
    if not order_no:
        # rt_cd "0" but no order number: probably accepted, but we cannot prove it or refer to it.
        logger.error("KIS order success without ODNO; outcome unknown: %s", summary)
        raise KisOrderOutcomeUnknown(reason="success without order number", order_summary=summary, **context)
    return OrderReceipt(
        order_no=normalize_order_no(order_no),
        org_no=normalize_branch_no(output.get("krx_fwdg_ord_orgno")),
        order_time=parse_time(output.get("ord_tmd")),
        msg_cd=context["msg_cd"],
        msg1=context["msg1"],
    )
