"""Typed records of the KIS real-time TRs (§6.3, §6.4). The parse functions (field tables → records) live
beside them; every record is immutable and carries integer KRW prices and integer share counts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..errors import KisProtocolError
from ..models import parse_date, parse_int, parse_time
from .errors import RealtimeProtocolError

TRADE_TR = "H0STCNT0"  # KRX 체결가, same id on paper
ORDER_BOOK_TR = "H0STASP0"  # KRX 10-level 호가, same id on paper
FILL_NOTICE_TR = {"real": "H0STCNI0", "paper": "H0STCNI9"}  # own order/fill notices, tr_key = HTS ID


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade (H0STCNT0). ``time`` is the exchange's HHMMSS on ``business_date`` (Seoul)."""

    code: str
    time: dt.time
    price: int
    change: int  # signed, against the previous close
    change_rate: float  # percent, signed
    open: int
    high: int
    low: int
    volume: int  # this trade (CNTG_VOL)
    cumulative_volume: int  # ACML_VOL
    cumulative_amount: int  # ACML_TR_PBMN, KRW
    ask1: int
    bid1: int
    business_date: dt.date | None  # BSOP_DATE
    halted: bool  # TRHT_YN == "Y"
    vi_reference_price: int  # VI_STND_PRC, 0 when none
    market_phase: str  # NEW_MKOP_CLS_CODE as sent

    @property
    def previous_close(self) -> int:
        return self.price - self.change


@dataclass(frozen=True, slots=True)
class OrderBook:
    """10-level 호가 (H0STASP0): index 0 is the best price on each side."""

    code: str
    time: dt.time
    asks: tuple[int, ...]
    bids: tuple[int, ...]
    ask_sizes: tuple[int, ...]
    bid_sizes: tuple[int, ...]
    total_ask_size: int
    total_bid_size: int
    expected_price: int  # ANTC_CNPR (예상체결가; 0 outside auctions)
    expected_volume: int  # ANTC_CNQN


@dataclass(frozen=True, slots=True)
class FillNotice:
    """One own-order notice (H0STCNI0 / paper H0STCNI9), decrypted. ``is_fill`` tells a fill (CNTG_YN "2")
    from an acceptance/modify/cancel/reject notice, whose quantity/price slots hold the order's values."""

    customer_id: str
    account_no: str
    order_no: str  # normalised: leading zeros stripped, as orders/broker_matching compares them
    original_order_no: str
    side: str  # "buy" | "sell"
    correction: str  # RCTF_CLS: "0" normal, "1" modify, "2" cancel
    order_kind: str  # ORD_DVSN code
    code: str
    quantity: int  # CNTG_QTY: this fill's shares (order qty in acceptance notices)
    price: int  # CNTG_UNPR
    time: dt.time
    rejected: bool  # RFUS_YN == "1"
    is_fill: bool  # CNTG_YN == "2"
    acceptance: str  # ACPT_YN
    branch_no: str
    order_quantity: int
    order_price: int
    name: str  # CNTG_ISNM40


# ---------------------------------------------------------------------------------------------- field tables
# The field order of each TR as KIS sends it (KIS_API.md §6.3, §6.4). Records are parsed by position, so a
# table is the single place that knows where a field sits.
TRADE_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "STCK_CNTG_HOUR", "STCK_PRPR", "PRDY_VRSS_SIGN", "PRDY_VRSS", "PRDY_CTRT",
    "WGHN_AVRG_STCK_PRC", "STCK_OPRC", "STCK_HGPR", "STCK_LWPR", "ASKP1", "BIDP1", "CNTG_VOL", "ACML_VOL",
    "ACML_TR_PBMN", "SELN_CNTG_CSNU", "SHNU_CNTG_CSNU", "NTBY_CNTG_CSNU", "CTTR", "SELN_CNTG_SMTN",
    "SHNU_CNTG_SMTN", "CCLD_DVSN", "SHNU_RATE", "PRDY_VOL_VRSS_ACML_VOL_RATE", "OPRC_HOUR",
    "OPRC_VRSS_PRPR_SIGN", "OPRC_VRSS_PRPR", "HGPR_HOUR", "HGPR_VRSS_PRPR_SIGN", "HGPR_VRSS_PRPR", "LWPR_HOUR",
    "LWPR_VRSS_PRPR_SIGN", "LWPR_VRSS_PRPR", "BSOP_DATE", "NEW_MKOP_CLS_CODE", "TRHT_YN", "ASKP_RSQN1",
    "BIDP_RSQN1", "TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN", "VOL_TNRT", "PRDY_SMNS_HOUR_ACML_VOL",
    "PRDY_SMNS_HOUR_ACML_VOL_RATE", "HOUR_CLS_CODE", "MRKT_TRTM_CLS_CODE", "VI_STND_PRC",
)
ORDER_BOOK_FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD", "BSOP_HOUR", "HOUR_CLS_CODE",
    *(f"ASKP{n}" for n in range(1, 11)),
    *(f"BIDP{n}" for n in range(1, 11)),
    *(f"ASKP_RSQN{n}" for n in range(1, 11)),
    *(f"BIDP_RSQN{n}" for n in range(1, 11)),
    "TOTAL_ASKP_RSQN", "TOTAL_BIDP_RSQN", "OVTM_TOTAL_ASKP_RSQN", "OVTM_TOTAL_BIDP_RSQN", "ANTC_CNPR",
    "ANTC_CNQN", "ANTC_VOL", "ANTC_CNTG_VRSS", "ANTC_CNTG_VRSS_SIGN", "ANTC_CNTG_PRDY_CTRT", "ACML_VOL",
    "TOTAL_ASKP_RSQN_ICDC", "TOTAL_BIDP_RSQN_ICDC", "OVTM_TOTAL_ASKP_ICDC", "OVTM_TOTAL_BIDP_ICDC",
    "STCK_DEAL_CLS_CODE",
)
FILL_NOTICE_FIELDS: tuple[str, ...] = (
    "CUST_ID", "ACNT_NO", "ODER_NO", "OODER_NO", "SELN_BYOV_CLS", "RCTF_CLS", "ODER_KIND", "ODER_COND",
    "STCK_SHRN_ISCD", "CNTG_QTY", "CNTG_UNPR", "STCK_CNTG_HOUR", "RFUS_YN", "CNTG_YN", "ACPT_YN", "BRNC_NO",
    "ODER_QTY", "ACNT_NAME", "ORD_COND_PRC", "ORD_EXG_GB", "POPUP_YN", "FILLER", "CRDT_CLS", "CRDT_LOAN_DATE",
    "CNTG_ISNM40", "ODER_PRC",
)
assert len(TRADE_FIELDS) == 46 and len(ORDER_BOOK_FIELDS) == 59 and len(FILL_NOTICE_FIELDS) == 26

_T = {name: index for index, name in enumerate(TRADE_FIELDS)}
_B = {name: index for index, name in enumerate(ORDER_BOOK_FIELDS)}
_N = {name: index for index, name in enumerate(FILL_NOTICE_FIELDS)}
_DOWN_SIGNS = frozenset({"4", "5"})  # PRDY_VRSS_SIGN: 1 상한, 2 상승, 3 보합, 4 하한, 5 하락
_SIDES = {"01": "sell", "02": "buy", "1": "sell", "2": "buy"}  # SELN_BYOV_CLS


# ---------------------------------------------------------------------------------------------- parsers
def parse_ticks(payload: str, count: int) -> list[Tick]:
    """The ``count`` H0STCNT0 records of one frame's payload (records back to back, ``^``-separated)."""
    return [_tick(values) for values in _records(payload, count, len(TRADE_FIELDS), TRADE_TR)]


def parse_order_books(payload: str, count: int) -> list[OrderBook]:
    """The ``count`` H0STASP0 records of one frame's payload."""
    return [_order_book(values) for values in _records(payload, count, len(ORDER_BOOK_FIELDS), ORDER_BOOK_TR)]


def parse_fill_notice(text: str) -> FillNotice:
    """One decrypted H0STCNI0/H0STCNI9 record. Fields past the 26 known ones are ignored: KIS appended
    fields in 2026 and parsers that insisted on an exact count broke (pitfall 21)."""
    values = text.split("^")
    if len(values) < len(FILL_NOTICE_FIELDS):
        raise RealtimeProtocolError(
            f"fill notice with {len(values)} fields, expected at least {len(FILL_NOTICE_FIELDS)}")
    return _fill_notice(values)


def parse_fill_notices(text: str, count: int) -> list[FillNotice]:
    """``count`` decrypted notice records back to back (KIS sends one per frame; more are split evenly)."""
    return [_fill_notice(values) for values in _records(text, count, len(FILL_NOTICE_FIELDS), "fill notice")]


def _records(payload: str, count: int, width: int, what: str) -> list[list[str]]:
    """Split a payload into ``count`` records of at least ``width`` fields each. A record may be longer than
    the table (KIS appends fields from time to time); the extra trailing fields are ignored."""
    values = payload.split("^")
    if count < 1:
        raise RealtimeProtocolError(f"{what} frame with record count {count}")
    per_record, remainder = divmod(len(values), count)
    if remainder or per_record < width:
        raise RealtimeProtocolError(
            f"{what} frame with {len(values)} fields for {count} record(s) of {width} fields")
    if count == 1:
        return [values]
    return [values[start:start + per_record] for start in range(0, len(values), per_record)]


def _int(text: str, name: str) -> int:
    try:
        return int(text)  # the common case, and by far the fastest at thousands of ticks a second
    except ValueError:
        pass
    try:
        return parse_int(text, name)  # blanks, "72900.00", "1,234"
    except KisProtocolError as exc:
        raise RealtimeProtocolError(f"not a number in field {name}") from exc


def _float(text: str, name: str) -> float:
    try:
        return float(text) if text.strip() else 0.0
    except ValueError:
        raise RealtimeProtocolError(f"not a number in field {name}") from None


def _time(text: str, name: str) -> dt.time:
    value = parse_time(text)
    if value is None:
        raise RealtimeProtocolError(f"not a time (HHMMSS) in field {name}")
    return value


def _tick(v: list[str]) -> Tick:
    change = _int(v[_T["PRDY_VRSS"]], "PRDY_VRSS")
    rate = _float(v[_T["PRDY_CTRT"]], "PRDY_CTRT")
    if v[_T["PRDY_VRSS_SIGN"]] in _DOWN_SIGNS:
        # KIS sends the change already signed; the sign code settles it when a feed sends magnitudes.
        change, rate = -abs(change), -abs(rate)
    return Tick(
        code=v[_T["MKSC_SHRN_ISCD"]].strip(),
        time=_time(v[_T["STCK_CNTG_HOUR"]], "STCK_CNTG_HOUR"),
        price=_int(v[_T["STCK_PRPR"]], "STCK_PRPR"),
        change=change,
        change_rate=rate,
        open=_int(v[_T["STCK_OPRC"]], "STCK_OPRC"),
        high=_int(v[_T["STCK_HGPR"]], "STCK_HGPR"),
        low=_int(v[_T["STCK_LWPR"]], "STCK_LWPR"),
        volume=_int(v[_T["CNTG_VOL"]], "CNTG_VOL"),
        cumulative_volume=_int(v[_T["ACML_VOL"]], "ACML_VOL"),
        cumulative_amount=_int(v[_T["ACML_TR_PBMN"]], "ACML_TR_PBMN"),
        ask1=_int(v[_T["ASKP1"]], "ASKP1"),
        bid1=_int(v[_T["BIDP1"]], "BIDP1"),
        business_date=parse_date(v[_T["BSOP_DATE"]]),
        halted=v[_T["TRHT_YN"]].strip().upper() == "Y",
        vi_reference_price=_int(v[_T["VI_STND_PRC"]], "VI_STND_PRC"),
        market_phase=v[_T["NEW_MKOP_CLS_CODE"]].strip(),
    )


def _levels(v: list[str], prefix: str) -> tuple[int, ...]:
    return tuple(_int(v[_B[f"{prefix}{n}"]], f"{prefix}{n}") for n in range(1, 11))


def _order_book(v: list[str]) -> OrderBook:
    return OrderBook(
        code=v[_B["MKSC_SHRN_ISCD"]].strip(),
        time=_time(v[_B["BSOP_HOUR"]], "BSOP_HOUR"),
        asks=_levels(v, "ASKP"),
        bids=_levels(v, "BIDP"),
        ask_sizes=_levels(v, "ASKP_RSQN"),
        bid_sizes=_levels(v, "BIDP_RSQN"),
        total_ask_size=_int(v[_B["TOTAL_ASKP_RSQN"]], "TOTAL_ASKP_RSQN"),
        total_bid_size=_int(v[_B["TOTAL_BIDP_RSQN"]], "TOTAL_BIDP_RSQN"),
        expected_price=_int(v[_B["ANTC_CNPR"]], "ANTC_CNPR"),
        expected_volume=_int(v[_B["ANTC_CNQN"]], "ANTC_CNQN"),
    )


def _order_no(text: str) -> str:
    # The record's contract (see FillNotice.order_no): leading zeros stripped. A blank or all-zero
    # original order number ("no original order") reads as "".
    return text.strip().lstrip("0")


def _fill_notice(v: list[str]) -> FillNotice:
    side = _SIDES.get(v[_N["SELN_BYOV_CLS"]].strip())
    if side is None:
        raise RealtimeProtocolError("fill notice with an unknown SELN_BYOV_CLS")
    return FillNotice(
        customer_id=v[_N["CUST_ID"]].strip(),
        account_no=v[_N["ACNT_NO"]].strip(),
        order_no=_order_no(v[_N["ODER_NO"]]),
        original_order_no=_order_no(v[_N["OODER_NO"]]),
        side=side,
        correction=v[_N["RCTF_CLS"]].strip(),
        order_kind=v[_N["ODER_KIND"]].strip(),
        code=v[_N["STCK_SHRN_ISCD"]].strip(),
        quantity=_int(v[_N["CNTG_QTY"]], "CNTG_QTY"),
        price=_int(v[_N["CNTG_UNPR"]], "CNTG_UNPR"),
        time=_time(v[_N["STCK_CNTG_HOUR"]], "STCK_CNTG_HOUR"),
        rejected=v[_N["RFUS_YN"]].strip() == "1",
        is_fill=v[_N["CNTG_YN"]].strip() == "2",
        acceptance=v[_N["ACPT_YN"]].strip(),
        branch_no=v[_N["BRNC_NO"]].strip(),
        order_quantity=_int(v[_N["ODER_QTY"]], "ODER_QTY"),
        order_price=_int(v[_N["ODER_PRC"]], "ODER_PRC"),
        name=v[_N["CNTG_ISNM40"]].strip(),
    )
