"""Strategy runs and signals: the user's strategies with their rules and parameters, the week's runs, and
the orders each run planned with why (in Korean, from the run's plan; no model involved)."""

from __future__ import annotations

import re
from collections import defaultdict

from orders.models import OrderReason, WeeklyRun
from strategies.library import get_strategy
from strategies.models import StrategyConfig

from .common import JOB_LABELS, REASON_LABELS, RUN_STATUS_LABELS, SIDE_LABELS, WeekWindow, finite, pct, rounded

MAX_CANDIDATES = 10

_NOTE_NUMBER = re.compile(r"(score|change)=(-?[0-9.eE+-]+)")


def codes_in_runs(runs: list[WeeklyRun]) -> set[str]:
    """The codes the runs' plans name: their orders and the top entry candidates."""
    codes: set[str] = set()
    for run in runs:
        plan = run.plan or {}
        codes |= {o.get("code", "") for o in plan.get("orders") or []}
        codes |= set((plan.get("candidates") or [])[:MAX_CANDIDATES])
    return codes


def _strategy_rules(config: StrategyConfig) -> dict:
    try:
        cls = get_strategy(config.strategy_key)
    except KeyError:
        return {"name": config.strategy_key, "description": "", "parameters": []}
    try:
        params = cls.validate_params(config.params)
    except Exception:  # stored parameters that no longer validate: shown as stored
        params = dict(config.params)
    return {
        "name": cls.name,
        "description": cls.description,
        "parameters": [
            {"name": spec.name, "label": spec.label or spec.name, "value": params.get(spec.name, spec.default)}
            for spec in cls.parameter_specs()
        ],
    }


def _note_values(order_info: dict) -> dict:
    """The numbers behind an order's note, as facts: the entry's ranking score, the change since entry."""
    values = {key: finite(value) for key, value in _NOTE_NUMBER.findall(order_info.get("note", ""))}
    result = {}
    if values.get("score") is not None:
        result["score"] = rounded(values["score"])
    if values.get("change") is not None:
        result["change_pct"] = pct(values["change"])
    return result


def _why(order_info: dict, rules: dict) -> str:
    """Why an order of a run was planned, in Korean, from the run's plan (no model involved)."""
    reason = order_info.get("reason", "")
    values = {key: finite(value) for key, value in _NOTE_NUMBER.findall(order_info.get("note", ""))}
    params = {p["name"]: p["value"] for p in rules.get("parameters", [])}
    if reason == OrderReason.ENTRY:
        score = values.get("score")
        return "매수 신호 (순위 점수 %s)" % (f"{score:.2f}" if score is not None else "–")
    change = values.get("change")
    change_text = f"진입가 대비 {change * 100:+.2f}%" if change is not None else ""
    if reason == OrderReason.STOP_LOSS:
        limit = finite(params.get("stop_loss"))
        return f"손절: {change_text}" + (f" (기준 {limit * 100:+.2f}%)" if limit is not None else "")
    if reason == OrderReason.TAKE_PROFIT:
        limit = finite(params.get("take_profit"))
        return f"익절: {change_text}" + (f" (기준 {limit * 100:+.2f}%)" if limit is not None else "")
    if reason == OrderReason.SIGNAL:
        return f"전략의 매도 신호 ({change_text})" if change_text else "전략의 매도 신호"
    if reason == OrderReason.WEEK_END:
        return f"주간 마지막 거래일 청산 ({change_text})" if change_text else "주간 마지막 거래일 청산"
    return REASON_LABELS.get(reason, reason)


def strategy_facts(configs: list[StrategyConfig], runs: list[WeeklyRun], window: WeekWindow,
                   names: dict[str, str]) -> list[dict]:
    result = []
    runs_by_config: dict[int, list[WeeklyRun]] = defaultdict(list)
    for run in sorted(runs, key=lambda run: (run.trading_date, run.pk)):
        runs_by_config[run.config_id].append(run)
    for config in configs:
        runs = runs_by_config.get(config.pk, [])
        if not runs and not config.is_active:
            continue
        rules = _strategy_rules(config)
        signals = []
        for run in runs:
            plan = run.plan or {}
            orders = plan.get("orders") or []
            entry = {
                "date": run.trading_date.isoformat(), "job": JOB_LABELS.get(run.job, run.job),
                "signal_day": plan.get("signal_day"),
                "orders": [
                    {"code": o.get("code", ""), "name": names.get(o.get("code", ""), ""),
                     "side": SIDE_LABELS.get(o.get("side", ""), o.get("side", "")), "quantity": o.get("quantity"),
                     "reference_price": o.get("reference_price"),
                     "reason": REASON_LABELS.get(o.get("reason", ""), o.get("reason", "")), "why": _why(o, rules),
                     **_note_values(o)}
                    for o in orders
                ],
            }
            if run.job == "entry":
                candidates = plan.get("candidates") or []
                entry["candidates"] = len(candidates)
                entry["top_candidates"] = [
                    {"code": code, "name": names.get(code, "")} for code in candidates[:MAX_CANDIDATES]
                ]
                entry["free_slots"] = plan.get("slots")
            if entry["orders"] or run.job == "entry":
                signals.append(entry)
        result.append({
            "name": config.name, "strategy": rules["name"], "active": config.is_active,
            "rules": rules["description"], "parameters": rules["parameters"],
            "max_positions": config.max_positions, "cash_per_week": int(config.cash_per_week),
            "runs": [
                {"date": run.trading_date.isoformat(), "job": JOB_LABELS.get(run.job, run.job),
                 "status": RUN_STATUS_LABELS.get(run.status, run.status), "reason": run.reason}
                for run in runs
            ],
            "signals": signals,
        })
    return result
