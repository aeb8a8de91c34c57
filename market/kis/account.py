"""Account inquiries (§4.4-4.6): balance, the day's orders and fills, the buyable amount -- and the tr_cont
pagination (§3.3) the first two need. Reads only, through the authenticated, retried ``KisAuth.call``.
Pure Python, no Django."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from . import deadline
from .auth import KisAuth
from .checks import check_code, check_positive_int
from .errors import KisDataChanged, KisPaginationError, KisProtocolError
from .models import (
    Balance,
    BalanceSummary,
    BuyableAmount,
    DailyOrder,
    Holding,
    lower_keys,
    normalize_branch_no,
    normalize_order_no,
    parse_date,
    parse_decimal,
    parse_int,
    parse_text,
    parse_time,
)
from .transport import SEOUL, KisTransport, logger

BALANCE_PATH = "/uapi/domestic-stock/v1/trading/inquire-balance"
DAILY_ORDERS_PATH = "/uapi/domestic-stock/v1/trading/inquire-daily-ccld"
BUYABLE_PATH = "/uapi/domestic-stock/v1/trading/inquire-psbl-order"

MORE_PAGES = frozenset({"F", "M"})  # response tr_cont: F/M more, D/E last (§3.2)
_SIDE_CODES = {"01": "sell", "02": "buy"}


class KisAccount:
    """Inquiry TRs of one account."""

    def __init__(
        self,
        transport: KisTransport,
        auth: KisAuth,
        account_no: str,
        product_code: str,
        *,
        max_pages: int,
        clock: Callable[[], dt.datetime],
        sleep: Callable[[float], None],
    ) -> None:
        self._transport = transport
        self._auth = auth
        self._account_no = account_no
        self._product_code = product_code
        self._max_pages = max_pages
        self._clock = clock
        self._sleep = sleep

    def get_balance(self, include_zero: bool = False) -> Balance:
        """Holdings and the cash summary, following tr_cont continuation to the end.

        Stocks sold out today stay listed with quantity 0 until D+2; they are dropped unless ``include_zero``."""
        params = {
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "AFHR_FLPR_YN": "N",
            "OFL_YN": "",
            "INQR_DVSN": "01",  # "02" is refused since 2026-02-10 (pitfall 13)
            "UNPR_DVSN": "01",
            "FUND_STTL_ICLD_YN": "N",
            "FNCG_AMT_AUTO_RDPT_YN": "N",
            "PRCS_DVSN": "00",
        }
        pages = self._paginate(BALANCE_PATH, "balance", params)
        holdings: list[Holding] = []
        seen_codes: set[str] = set()
        for page in pages:
            for row in page.get("output1") or []:
                holding = parse_holding(row)
                # Duplicated rows across pages would double the held quantity (reliability row 13).
                if holding is None or holding.code in seen_codes:
                    continue
                if holding.quantity == 0 and not include_zero:
                    continue
                seen_codes.add(holding.code)
                holdings.append(holding)
        summary_rows = pages[-1].get("output2")
        summary_row = summary_rows[0] if isinstance(summary_rows, list) and summary_rows else summary_rows
        if not isinstance(summary_row, dict):
            raise KisProtocolError("balance without summary (output2)", path=BALANCE_PATH)
        return Balance(holdings=holdings, summary=parse_balance_summary(summary_row), pages=len(pages))

    def get_daily_orders(self, start: dt.date, end: dt.date, side: str = "all", code: str = "",
                         order_no: str = "", fill_status: str = "all", exchange: str = "KRX") -> list[DailyOrder]:
        """Orders and fills placed in [start, end] (inquire-daily-ccld), newest first, all pages.

        Uses the recent TR for the last ~3 months and the old-history TR before that (splitting the range
        when it straddles the boundary). ``side``: all/buy/sell; ``fill_status``: all/filled/unfilled."""
        if start > end:
            raise ValueError("start must not be after end")
        side_code = {"all": "00", "sell": "01", "buy": "02"}.get(side)  # must be two digits (pitfall 19)
        fill_code = {"all": "00", "filled": "01", "unfilled": "02"}.get(fill_status)
        if side_code is None or fill_code is None:
            raise ValueError("side must be all/buy/sell and fill_status all/filled/unfilled")
        if code:
            code = check_code(code)
        exchange = exchange.upper()
        if exchange not in ("KRX", "NXT", "SOR", "ALL") or (self._transport.mode == "paper" and exchange != "KRX"):
            raise ValueError("exchange must be KRX/NXT/SOR/ALL (paper: KRX)")

        cutoff = recent_orders_cutoff(self._clock().astimezone(SEOUL).date())
        ranges: list[tuple[str, dt.date, dt.date]] = []
        if end >= cutoff:
            ranges.append(("daily_orders_recent", max(start, cutoff), end))
        if start < cutoff:
            ranges.append(("daily_orders_old", start, min(end, cutoff - dt.timedelta(days=1))))

        orders: list[DailyOrder] = []
        seen: set[tuple[dt.date | None, str]] = set()
        for operation, range_start, range_end in ranges:
            params = {
                "CANO": self._account_no,
                "ACNT_PRDT_CD": self._product_code,
                "INQR_STRT_DT": range_start.strftime("%Y%m%d"),
                "INQR_END_DT": range_end.strftime("%Y%m%d"),
                "SLL_BUY_DVSN_CD": side_code,
                "PDNO": code,
                "ORD_GNO_BRNO": "",
                "ODNO": order_no,
                "CCLD_DVSN": fill_code,
                "INQR_DVSN": "00",
                "INQR_DVSN_1": "",
                "INQR_DVSN_3": "00",
                "EXCG_ID_DVSN_CD": exchange,
            }
            for page in self._paginate(DAILY_ORDERS_PATH, operation, params):
                for row in page.get("output1") or []:
                    order = parse_daily_order(row)
                    if order is None:
                        continue
                    identity = (order.order_date, order.order_no)
                    if identity in seen:  # the same row on two pages must not count twice
                        continue
                    seen.add(identity)
                    orders.append(order)
        return orders

    def get_buyable(self, code: str, price: int | None = None) -> BuyableAmount:
        """Orderable cash and buyable quantity (inquire-psbl-order).

        ``price=None`` asks as for a market order (ORD_DVSN 01), which KIS sizes at the upper-limit price and
        which respects the stock's margin rate (§4.6); a price asks as for a limit order at that price."""
        code = check_code(code)
        if price is not None:
            price = check_positive_int(price, "price")
        response = self._auth.call("GET", BUYABLE_PATH, "buyable", params={
            "CANO": self._account_no,
            "ACNT_PRDT_CD": self._product_code,
            "PDNO": code,
            "ORD_UNPR": "" if price is None else str(price),
            "ORD_DVSN": "01" if price is None else "00",
            "CMA_EVLU_AMT_ICLD_YN": "N",
            "OVRS_ICLD_YN": "N",
        })
        out = response.data.get("output")
        if not isinstance(out, dict):
            raise KisProtocolError("buyable amount without output", path=BUYABLE_PATH)
        return BuyableAmount(
            code=code,
            orderable_cash=parse_int(out.get("ord_psbl_cash"), "ord_psbl_cash"),
            price_used=parse_int(out.get("psbl_qty_calc_unpr"), "psbl_qty_calc_unpr"),
            cash_only_amount=parse_int(out.get("nrcvb_buy_amt"), "nrcvb_buy_amt"),
            cash_only_quantity=parse_int(out.get("nrcvb_buy_qty"), "nrcvb_buy_qty"),
            max_amount=parse_int(out.get("max_buy_amt"), "max_buy_amt"),
            max_quantity=parse_int(out.get("max_buy_qty"), "max_buy_qty"),
        )

    # ------------------------------------------------------------------------------------------ paging
    def _paginate(self, path: str, operation: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """All pages of a tr_cont-paginated TR; restarts from page 1 on SYDB0050 (at most twice)."""
        restarts = 2
        for restart in range(restarts + 1):
            try:
                return self._collect_pages(path, operation, params)
            except KisDataChanged:
                if restart == restarts:
                    raise
                logger.warning("KIS %s: data changed between pages (SYDB0050); restarting from page 1", path)
                deadline.sleep_within(self._transport.backoff(restart + 1), "retry", self._sleep)
        raise AssertionError("unreachable")

    def _collect_pages(self, path: str, operation: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        fk = nk = ""
        request_tr_cont = ""
        seen_keys: set[tuple[str, str]] = set()
        for _ in range(self._max_pages):
            page_params = dict(params, CTX_AREA_FK100=fk, CTX_AREA_NK100=nk)
            response = self._auth.call("GET", path, operation, params=page_params, tr_cont=request_tr_cont)
            pages.append(response.data)
            if response.tr_cont not in MORE_PAGES:
                return pages
            # Continuation keys are opaque (padding unknown): echo them back unchanged (§3.3).
            fk = str(response.data.get("ctx_area_fk100") or "")
            nk = str(response.data.get("ctx_area_nk100") or "")
            if not nk.strip():
                return pages  # blank NK key: nothing follows, whatever tr_cont said
            if (fk, nk) in seen_keys:
                raise KisPaginationError("continuation key repeated", tr_id=self._transport.tr(operation), path=path)
            seen_keys.add((fk, nk))
            request_tr_cont = "N"
        raise KisPaginationError(f"more than {self._max_pages} pages", tr_id=self._transport.tr(operation),
                                 path=path)


def recent_orders_cutoff(today: dt.date) -> dt.date:
    """First day covered by the recent daily-orders TR: the 1st of the month three months back (§4.5)."""
    month_index = today.year * 12 + (today.month - 1) - 3
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


def parse_holding(row: Any) -> Holding | None:
    if not isinstance(row, dict) or not parse_text(row.get("pdno")):
        return None
    return Holding(
        code=parse_text(row.get("pdno")),
        name=parse_text(row.get("prdt_name")),
        quantity=parse_int(row.get("hldg_qty"), "hldg_qty"),
        sellable_quantity=parse_int(row.get("ord_psbl_qty"), "ord_psbl_qty"),
        average_price=parse_decimal(row.get("pchs_avg_pric"), "pchs_avg_pric"),
        purchase_amount=parse_int(row.get("pchs_amt"), "pchs_amt"),
        current_price=parse_int(row.get("prpr"), "prpr"),
        evaluation_amount=parse_int(row.get("evlu_amt"), "evlu_amt"),
        profit_amount=parse_int(row.get("evlu_pfls_amt"), "evlu_pfls_amt"),
        profit_rate=parse_decimal(row.get("evlu_pfls_rt"), "evlu_pfls_rt"),
        today_bought=parse_int(row.get("thdt_buyqty"), "thdt_buyqty"),
        today_sold=parse_int(row.get("thdt_sll_qty"), "thdt_sll_qty"),
    )


def parse_balance_summary(row: dict[str, Any]) -> BalanceSummary:
    return BalanceSummary(
        cash_deposit=parse_int(row.get("dnca_tot_amt"), "dnca_tot_amt"),
        cash_d1=parse_int(row.get("nxdy_excc_amt"), "nxdy_excc_amt"),
        cash_d2=parse_int(row.get("prvs_rcdl_excc_amt"), "prvs_rcdl_excc_amt"),
        securities_evaluation=parse_int(row.get("scts_evlu_amt"), "scts_evlu_amt"),
        total_evaluation=parse_int(row.get("tot_evlu_amt"), "tot_evlu_amt"),
        net_assets=parse_int(row.get("nass_amt"), "nass_amt"),
        purchase_total=parse_int(row.get("pchs_amt_smtl_amt"), "pchs_amt_smtl_amt"),
        evaluation_total=parse_int(row.get("evlu_amt_smtl_amt"), "evlu_amt_smtl_amt"),
        profit_total=parse_int(row.get("evlu_pfls_smtl_amt"), "evlu_pfls_smtl_amt"),
        today_fees_and_tax=parse_int(row.get("thdt_tlex_amt"), "thdt_tlex_amt"),
    )


def parse_daily_order(row: Any) -> DailyOrder | None:
    fields = lower_keys(row)  # "excg_id_dvsn_Cd" casing is unconfirmed (§4.5)
    if not fields or not parse_text(fields.get("odno")):
        return None
    return DailyOrder(
        order_date=parse_date(fields.get("ord_dt")),
        order_no=normalize_order_no(fields.get("odno")),
        original_order_no=normalize_order_no(fields.get("orgn_odno")),
        branch_no=normalize_branch_no(fields.get("ord_gno_brno")),
        side=_SIDE_CODES.get(parse_text(fields.get("sll_buy_dvsn_cd")), ""),
        code=parse_text(fields.get("pdno")),
        name=parse_text(fields.get("prdt_name")),
        quantity=parse_int(fields.get("ord_qty"), "ord_qty"),
        price=parse_int(fields.get("ord_unpr"), "ord_unpr"),
        order_time=parse_time(fields.get("ord_tmd")),
        filled_quantity=parse_int(fields.get("tot_ccld_qty"), "tot_ccld_qty"),
        average_fill_price=parse_decimal(fields.get("avg_prvs"), "avg_prvs"),
        filled_amount=parse_int(fields.get("tot_ccld_amt"), "tot_ccld_amt"),
        cancelled=parse_text(fields.get("cncl_yn")).upper() == "Y",
        cancel_confirmed_quantity=parse_int(fields.get("cnc_cfrm_qty"), "cnc_cfrm_qty"),
        remaining_quantity=parse_int(fields.get("rmn_qty"), "rmn_qty"),
        rejected_quantity=parse_int(fields.get("rjct_qty"), "rjct_qty"),
        order_type=parse_text(fields.get("ord_dvsn_cd")),
        order_type_name=parse_text(fields.get("ord_dvsn_name")),
        exchange=parse_text(fields.get("excg_id_dvsn_cd")),
    )
