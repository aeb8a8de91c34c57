"""Plain data returned by :class:`market.kis.client.KisClient`, and the defensive field parsers.

Money is int KRW, quantities are int shares, averages and rates are ``Decimal`` (KIS sends them as decimal
strings such as ``"71200.0000"``), dates are ``datetime.date`` and times ``datetime.time``.
KIS sends every number as a string and leaves fields blank when it has nothing to say, so blank numbers
read as 0 and blank or impossible dates/times read as None; text that is not a number at all is a
protocol error, because silently turning it into 0 could size an order wrongly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import KisProtocolError


# ---------------------------------------------------------------------------------------------- parsers
def parse_int(value: Any, field_name: str = "") -> int:
    """``"72,900"``/``" 10"``/``"-300"``/``"0.0000"`` -> int; blank -> 0."""
    if value is None or isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip().replace(",", "")
    if not text:
        return 0
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise KisProtocolError(f"not a number in field {field_name or '?'}") from None
    if not number.is_finite():
        raise KisProtocolError(f"not a finite number in field {field_name or '?'}")
    return int(number)


def parse_decimal(value: Any, field_name: str = "") -> Decimal:
    if value is None or isinstance(value, bool):
        return Decimal(0)
    text = str(value).strip().replace(",", "")
    if not text:
        return Decimal(0)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise KisProtocolError(f"not a number in field {field_name or '?'}") from None
    if not number.is_finite():
        raise KisProtocolError(f"not a finite number in field {field_name or '?'}")
    return number


def parse_date(value: Any) -> dt.date | None:
    """``"20260105"`` -> date; blank or impossible dates (``"00000000"``) -> None."""
    text = str(value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def parse_time(value: Any) -> dt.time | None:
    """``"090011"`` -> time; blank or impossible (``"246060"``) -> None (real accounts send blanks)."""
    text = str(value or "").strip()
    if len(text) != 6 or not text.isdigit():
        return None
    try:
        return dt.time(int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        return None


def parse_text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


ORDER_NO_WIDTH = 10  # real KIS answers ODNO as 10 zero-padded digits ("0000117057")
BRANCH_NO_WIDTH = 5  # KRX_FWDG_ORD_ORGNO / ord_gno_brno, e.g. "91252", "00950"


def normalize_order_no(value: Any) -> str:
    """One spelling per order number: 모의투자 answers the order with ``"47001"`` while its daily orders
    list ``"0000047001"`` (§4.1), so numeric numbers are zero-padded to 10 digits before they are stored
    or compared. Blank stays blank; anything non-numeric is kept as sent (stripped)."""
    text = parse_text(value)
    return text.zfill(ORDER_NO_WIDTH) if text.isdigit() else text


def normalize_branch_no(value: Any) -> str:
    """The order branch number, zero-padded to 5 digits like :func:`normalize_order_no`."""
    text = parse_text(value)
    return text.zfill(BRANCH_NO_WIDTH) if text.isdigit() else text


def lower_keys(obj: Any) -> dict[str, Any]:
    """KIS mixes key case between TRs (order-cash ``ODNO``, order-rvsecncl ``odno``, ``excg_id_dvsn_Cd``)."""
    if not isinstance(obj, dict):
        return {}
    return {str(key).lower(): value for key, value in obj.items()}


# ---------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class AccessToken:
    token: str = field(repr=False)
    expires_at: dt.datetime

    def __str__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True)
class Quote:
    code: str
    price: int  # stck_prpr
    change: int  # prdy_vrss, signed
    change_sign: str  # prdy_vrss_sign: 1 upper limit, 2 up, 3 flat, 4 lower limit, 5 down
    change_rate: Decimal  # prdy_ctrt, percent
    open: int
    high: int
    low: int
    volume: int  # acml_vol
    traded_value: int  # acml_tr_pbmn, KRW
    base_price: int  # stck_sdpr, normally the previous close
    upper_limit: int  # stck_mxpr
    lower_limit: int  # stck_llam
    tick_size: int  # aspr_unit
    lot_size: int  # hts_deal_qty_unit_val
    status_code: str  # iscd_stat_cls_code (58 = trading halt, 51 = administrative issue, ...)
    temporarily_halted: bool  # temp_stop_yn
    market_warning_code: str  # mrkt_warn_cls_code: 00 none, 01 caution, 02 warning, 03 danger
    vi_code: str  # vi_cls_code
    market_name: str  # rprs_mrkt_kor_name
    sector_name: str  # bstp_kor_isnm


@dataclass(frozen=True)
class DailyBar:
    date: dt.date
    open: int
    high: int
    low: int
    close: int
    volume: int
    traded_value: int
    ex_rights_code: str  # flng_cls_code: "00"/"" none, "01" 권리락, "02" 배당락, ...
    split_ratio: Decimal  # prtt_rate
    no_trade: bool  # mod_yn == "Y": no trade that day


@dataclass(frozen=True)
class OrderReceipt:
    """KIS accepted the order (or revise/cancel request) for processing."""

    order_no: str  # ODNO; a revise/cancel gets a new number of its own
    org_no: str  # KRX_FWDG_ORD_ORGNO, needed to revise/cancel
    order_time: dt.time | None  # ORD_TMD
    msg_cd: str
    msg1: str


@dataclass(frozen=True)
class Holding:
    code: str
    name: str
    quantity: int  # hldg_qty
    sellable_quantity: int  # ord_psbl_qty: never sell more than this
    average_price: Decimal  # pchs_avg_pric
    purchase_amount: int  # pchs_amt
    current_price: int  # prpr
    evaluation_amount: int  # evlu_amt
    profit_amount: int  # evlu_pfls_amt
    profit_rate: Decimal  # evlu_pfls_rt, percent
    today_bought: int  # thdt_buyqty
    today_sold: int  # thdt_sll_qty


@dataclass(frozen=True)
class BalanceSummary:
    cash_deposit: int  # dnca_tot_amt 예수금 (not the orderable amount; see get_buyable)
    cash_d1: int  # nxdy_excc_amt
    cash_d2: int  # prvs_rcdl_excc_amt
    securities_evaluation: int  # scts_evlu_amt
    total_evaluation: int  # tot_evlu_amt
    net_assets: int  # nass_amt
    purchase_total: int  # pchs_amt_smtl_amt
    evaluation_total: int  # evlu_amt_smtl_amt
    profit_total: int  # evlu_pfls_smtl_amt
    today_fees_and_tax: int  # thdt_tlex_amt


@dataclass(frozen=True)
class Balance:
    holdings: list[Holding]
    summary: BalanceSummary
    pages: int  # how many continuation pages were read


@dataclass(frozen=True)
class DailyOrder:
    order_date: dt.date | None
    order_no: str  # odno
    original_order_no: str  # orgn_odno: set on revise/cancel rows
    branch_no: str  # ord_gno_brno (KRX_FWDG_ORD_ORGNO for revise/cancel)
    side: str  # "sell" / "buy" / "" (sll_buy_dvsn_cd 01 / 02)
    code: str
    name: str
    quantity: int
    price: int
    order_time: dt.time | None
    filled_quantity: int  # tot_ccld_qty
    average_fill_price: Decimal  # avg_prvs
    filled_amount: int  # tot_ccld_amt
    cancelled: bool  # cncl_yn
    cancel_confirmed_quantity: int  # cnc_cfrm_qty
    remaining_quantity: int  # rmn_qty
    rejected_quantity: int  # rjct_qty
    order_type: str  # ord_dvsn_cd
    order_type_name: str  # ord_dvsn_name
    exchange: str  # excg_id_dvsn_cd (KRX/NXT/SOR)


@dataclass(frozen=True)
class BuyableAmount:
    code: str
    orderable_cash: int  # ord_psbl_cash
    price_used: int  # psbl_qty_calc_unpr (upper-limit price for market orders)
    cash_only_amount: int  # nrcvb_buy_amt: without 미수 -- use this for cash-only trading
    cash_only_quantity: int  # nrcvb_buy_qty
    max_amount: int  # max_buy_amt (with 미수)
    max_quantity: int  # max_buy_qty
