"""Live vs backtest: the week's stored comparison of each strategy config (`orders.drift`, computed
after the week's exit): P&L gap, slippage, missing and extra trades, and whether it drifted."""

from __future__ import annotations

from orders.models import WeeklyDrift
from strategies.models import StrategyConfig

from .common import SIDE_LABELS, WeekWindow

MAX_DIFFERENCES = 10  # trade rows per strategy handed over (the counts cover them all)

KIND_LABELS = {"missing": "백테스트에만 있음(실거래 누락)", "extra": "실거래에만 있음", "matched": "양쪽 모두",
               "carried": "지난주 보유분 매도"}


def _difference(row: dict, names: dict[str, str]) -> dict:
    return {
        "date": row["date"], "code": row["code"], "name": names.get(row["code"], ""),
        "side": SIDE_LABELS.get(row["side"], row["side"]), "kind": KIND_LABELS.get(row["kind"], row["kind"]),
        "backtest_quantity": row["backtest_quantity"], "live_quantity": row["live_quantity"],
        "backtest_price": row["backtest_price"], "live_price": row["live_price"],
        "slippage_krw": row["slippage_krw"], "slippage_bps": row["slippage_bps"],
    }


def drift_facts(configs: list[StrategyConfig], window: WeekWindow, names: dict[str, str]) -> list[dict]:
    """One entry per strategy with a comparison stored for the week (none when it was not computed)."""
    drifts = (WeeklyDrift.objects.filter(config__in=configs, week_start=window.monday).select_related("config")
              .order_by("config__name", "config_id"))
    facts = []
    for drift in drifts:
        differences = [row for row in drift.trades
                       if row["kind"] != "matched" or row["quantity_diff"] or row["slippage_krw"]]
        facts.append({
            "strategy": drift.config.name,
            "matched_trades": drift.matched_count, "missing_trades": drift.missing_count,
            "extra_trades": drift.extra_count, "quantity_differences": drift.qty_diff_count,
            "live_pnl": drift.live_pnl, "backtest_pnl": drift.backtest_pnl, "pnl_gap": drift.pnl_gap_krw,
            "invested": drift.invested_krw, "pnl_gap_bps": round(drift.gap_bps, 2),
            "slippage_krw": drift.slippage_krw,
            "slippage_bps": None if drift.slippage_bps is None else round(drift.slippage_bps, 2),
            "alert_threshold_bps": drift.config.drift_alert_bps, "alert": drift.alert,
            "alert_reasons": list(drift.alert_reasons),
            "differences": [_difference(row, names) for row in differences[:MAX_DIFFERENCES]],
        })
    return facts


def drift_codes(configs: list[StrategyConfig], window: WeekWindow) -> set[str]:
    """The codes of the week's compared trades (for the name look-up)."""
    codes: set[str] = set()
    for trades in WeeklyDrift.objects.filter(config__in=configs, week_start=window.monday).values_list("trades",
                                                                                                      flat=True):
        codes |= {row["code"] for row in trades or []}
    return codes
