"""Quotations (§4.7-4.8): the current price and the daily OHLCV bars of one stock. Reads only, so every
call goes through the authenticated, retried ``KisAuth.call``. Pure Python, no Django."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .auth import KisAuth
from .checks import check_code
from .errors import KisNotFound, KisPaginationError, KisProtocolError
from .models import DailyBar, Quote, parse_date, parse_decimal, parse_int, parse_text

QUOTE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"
DAILY_CHART_PATH = "/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice"

CHART_ROWS_PER_CALL = 100  # §4.8


class KisQuotations:
    """Quotation TRs (no account involved)."""

    def __init__(self, auth: KisAuth) -> None:
        self._auth = auth

    def get_quote(self, code: str, market: str = "J") -> Quote:
        code = check_code(code)
        response = self._auth.call("GET", QUOTE_PATH, "quote",
                                   params={"FID_COND_MRKT_DIV_CODE": market, "FID_INPUT_ISCD": code})
        out = response.data.get("output")
        if not isinstance(out, dict):
            raise KisProtocolError("quote without output", path=QUOTE_PATH)
        price = parse_int(out.get("stck_prpr"), "stck_prpr")
        if price <= 0:
            raise KisNotFound(f"no price for {code}", msg_cd=parse_text(response.data.get("msg_cd")),
                              path=QUOTE_PATH)
        return Quote(
            code=parse_text(out.get("stck_shrn_iscd")) or code,
            price=price,
            change=parse_int(out.get("prdy_vrss"), "prdy_vrss"),
            change_sign=parse_text(out.get("prdy_vrss_sign")),
            change_rate=parse_decimal(out.get("prdy_ctrt"), "prdy_ctrt"),
            open=parse_int(out.get("stck_oprc"), "stck_oprc"),
            high=parse_int(out.get("stck_hgpr"), "stck_hgpr"),
            low=parse_int(out.get("stck_lwpr"), "stck_lwpr"),
            volume=parse_int(out.get("acml_vol"), "acml_vol"),
            traded_value=parse_int(out.get("acml_tr_pbmn"), "acml_tr_pbmn"),
            base_price=parse_int(out.get("stck_sdpr"), "stck_sdpr"),
            upper_limit=parse_int(out.get("stck_mxpr"), "stck_mxpr"),
            lower_limit=parse_int(out.get("stck_llam"), "stck_llam"),
            tick_size=parse_int(out.get("aspr_unit"), "aspr_unit"),
            lot_size=parse_int(out.get("hts_deal_qty_unit_val"), "hts_deal_qty_unit_val") or 1,
            status_code=parse_text(out.get("iscd_stat_cls_code")),
            temporarily_halted=parse_text(out.get("temp_stop_yn")).upper() == "Y",
            market_warning_code=parse_text(out.get("mrkt_warn_cls_code")),
            vi_code=parse_text(out.get("vi_cls_code")),
            market_name=parse_text(out.get("rprs_mrkt_kor_name")),
            sector_name=parse_text(out.get("bstp_kor_isnm")),
        )

    def get_daily_bars(self, code: str, start: dt.date, end: dt.date, adjusted: bool = True,
                       market: str = "J") -> list[DailyBar]:
        """Daily OHLCV for [start, end], oldest first, any length.

        The chart TR returns at most 100 rows, newest first, without tr_cont; we walk backwards by moving
        the end date to the day before the oldest row returned (§4.8)."""
        code = check_code(code)
        if start > end:
            raise ValueError("start must not be after end")
        # 100 distinct trading days span at least 100 calendar days, so this many calls always suffice.
        page_cap = (end - start).days // CHART_ROWS_PER_CALL + 3
        bars: dict[dt.date, DailyBar] = {}
        cursor = end
        for _ in range(page_cap):
            response = self._auth.call("GET", DAILY_CHART_PATH, "daily_chart", params={
                "FID_COND_MRKT_DIV_CODE": market,
                "FID_INPUT_ISCD": code,
                "FID_INPUT_DATE_1": start.strftime("%Y%m%d"),
                "FID_INPUT_DATE_2": cursor.strftime("%Y%m%d"),
                "FID_PERIOD_DIV_CODE": "D",
                "FID_ORG_ADJ_PRC": "0" if adjusted else "1",  # here 0 = adjusted (§4.8, pitfall 14)
            })
            rows = response.data.get("output2")
            page = [bar for bar in (parse_bar(row) for row in (rows if isinstance(rows, list) else []))
                    if bar is not None and start <= bar.date <= cursor]
            if not page:
                break
            for bar in page:
                bars[bar.date] = bar
            oldest = min(bar.date for bar in page)
            if oldest <= start:
                break
            cursor = oldest - dt.timedelta(days=1)
        else:
            raise KisPaginationError(f"daily chart did not finish within {page_cap} calls", path=DAILY_CHART_PATH)
        return [bars[day] for day in sorted(bars)]


def parse_bar(row: Any) -> DailyBar | None:
    if not isinstance(row, dict) or not row:
        return None  # the real server pads output2 with {} (§4.8)
    day = parse_date(row.get("stck_bsop_date"))
    if day is None:
        return None
    return DailyBar(
        date=day,
        open=parse_int(row.get("stck_oprc"), "stck_oprc"),
        high=parse_int(row.get("stck_hgpr"), "stck_hgpr"),
        low=parse_int(row.get("stck_lwpr"), "stck_lwpr"),
        close=parse_int(row.get("stck_clpr"), "stck_clpr"),
        volume=parse_int(row.get("acml_vol"), "acml_vol"),
        traded_value=parse_int(row.get("acml_tr_pbmn"), "acml_tr_pbmn"),
        ex_rights_code=parse_text(row.get("flng_cls_code")),
        split_ratio=parse_decimal(row.get("prtt_rate"), "prtt_rate"),
        no_trade=parse_text(row.get("mod_yn")).upper() == "Y",
    )
