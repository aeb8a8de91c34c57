"""Actions of the strategies app: saving configs, running backtests (command, page, API and Celery
all call these)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from market.models import DailyBar
from strategies.backtest import BacktestConfig, run_backtest
from strategies.library import create_strategy, get_strategy

from . import selectors, validators
from .market_data import BacktestInputError, load_market_data
from .models import BacktestRun, BacktestSweep, RunStatus, StrategyConfig, UniverseMode
from .validators import normalise_codes

logger = logging.getLogger(__name__)

def top_traded_codes(n: int, as_of: dt.date, days: int = 60) -> list[str]:
    """The `n` listed instruments with the largest traded value over the `days` before `as_of`
    (a KOSPI200-like liquid universe)."""
    since = as_of - dt.timedelta(days=days)
    rows = (
        DailyBar.objects.filter(date__gte=since, date__lte=as_of, instrument__is_listed=True)
        .values("instrument__code").annotate(value=Sum("traded_value")).order_by("-value", "instrument__code")[:n]
    )
    return [row["instrument__code"] for row in rows]


def universe_for(config: StrategyConfig, as_of: dt.date) -> list[str]:
    if config.universe_mode == UniverseMode.CODES:
        return normalise_codes(config.code_list)
    return top_traded_codes(config.universe_top_n, as_of)


def check_period(codes: Iterable[str] | None, start: dt.date, end: dt.date) -> None:
    """A backtest's period: start before end, both within the stored bars of `codes` (None: of every
    instrument, for a top-N universe chosen later). The message gives the stored range."""
    if start >= end:
        raise BacktestInputError(f"시작일({start})이 종료일({end})보다 앞서야 합니다.", field="end")
    period = selectors.bar_period(codes)
    if period is None:
        raise BacktestInputError("선택한 종목에 저장된 일봉이 없습니다. 먼저 시세를 가져오세요.", field="codes")
    first, last = period
    for field, label, day in (("start", "시작일", start), ("end", "종료일", end)):
        if not first <= day <= last:
            raise BacktestInputError(
                f"{label} {day}이(가) 저장된 일봉 기간 밖입니다: {first} ~ {last} 안에서 고르세요.", field=field
            )


def check_bounds(name: str, label: str, value, low: int, high: int, unit: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BacktestInputError(
            f"{label}은(는) {low:,}{unit} 이상 {high:,}{unit} 이하의 정수여야 합니다 (입력값: {str(value)[:30]}).",
            field=name,
        )


class ConfigInUse(Exception):
    """A strategy config with orders on record is kept (the orders point at it): deactivate it instead.
    `message`: what the page and the API say (the config's name is the exception's argument)."""

    @property
    def message(self) -> str:
        return _("%(name)s has orders on record, so it is kept; deactivate it to stop trading.") % {
            "name": self.args[0]}


def delete_config(config: StrategyConfig) -> None:
    """Delete a config that never traded; one with orders on record raises ConfigInUse (the trading
    history must keep its strategy)."""
    try:
        with transaction.atomic():
            config.delete()
    except ProtectedError as error:
        raise ConfigInUse(config.name) from error


def validated_run_settings(
    *, codes: Iterable[str], start: dt.date, end: dt.date, initial_cash: int = 10_000_000, max_positions: int = 10,
    cash_per_week: int | None = None, commission: Decimal | None = None, tax: Decimal | None = None,
    slippage_ticks: int = 0, participation_cap: Decimal | None = None, spread_ticks: int = 0,
    small_cap_value: int = 1_000_000_000, universe_top_n: int | None = None, period_checked: bool = False,
    config: StrategyConfig | None = None,
) -> dict:
    """The settings a backtest, a sweep and a walk-forward share, validated once (BacktestInputError
    in Korean, with the field) and JSON-ready (dates ISO, rates as strings; ``backtest_config`` reads
    them back). `cash_per_week` caps each week's buys as the live config does (None: all the cash
    there is). `participation_cap`: a buy takes at most this fraction of the entry day's volume
    (None: no cap); `spread_ticks`: extra ticks each way for small caps (average daily traded value
    below `small_cap_value` KRW); `universe_top_n`: only the top N of `codes` by traded value as of
    each week are bought (None: all of them). `period_checked`: the caller has run `check_period` on
    these codes and dates already. `config` (the strategy config a run came from) is not a setting."""
    codes = normalise_codes(codes)
    if not codes:
        raise BacktestInputError("백테스트할 종목을 하나 이상 지정하세요.", field="codes")
    if len(codes) > validators.MAX_UNIVERSE_CODES:
        raise BacktestInputError(
            f"종목은 {validators.MAX_UNIVERSE_CODES:,}개까지입니다 (입력: {len(codes):,}개).", field="codes"
        )
    check_bounds("initial_cash", "초기 자금", initial_cash, validators.MIN_INITIAL_CASH_KRW,
                  validators.MAX_CASH_KRW, "원")
    check_bounds("max_positions", "최대 보유 종목 수", max_positions, 1, validators.MAX_POSITIONS)
    if cash_per_week is not None:
        check_bounds("cash_per_week", "주간 투자금", cash_per_week, 0, validators.MAX_CASH_KRW, "원")
    check_bounds("slippage_ticks", "슬리피지(틱)", slippage_ticks, 0, validators.MAX_SLIPPAGE_TICKS)
    if participation_cap is not None:  # stored as a Decimal of 4 places within PARTICIPATION_VALIDATORS
        low, high = (v.limit_value for v in validators.PARTICIPATION_VALIDATORS)
        try:
            cap = participation_cap if isinstance(participation_cap, Decimal) else Decimal(str(participation_cap))
            valid = (not isinstance(participation_cap, bool) and cap.is_finite() and low <= cap <= high
                     and cap == round(cap, 4))
        except ArithmeticError:
            valid = False
        if not valid:
            raise BacktestInputError(
                f"거래량 참여 한도는 {low} 이상 {high} 이하의 비율(소수점 넷째 자리까지)이어야 합니다 "
                f"(예: 0.05 = 하루 거래량의 5%, 입력값: {str(participation_cap)[:30]}).",
                field="participation_cap",
            )
        participation_cap = cap
    check_bounds("spread_ticks", "소형주 호가 스프레드(틱)", spread_ticks, 0, validators.MAX_SPREAD_TICKS)
    check_bounds("small_cap_value", "소형주 기준 거래대금", small_cap_value, 0, validators.MAX_CASH_KRW, "원")
    if universe_top_n is not None:
        check_bounds("universe_top_n", "시점별 상위 N", universe_top_n, 1, validators.MAX_UNIVERSE_CODES)
    unknown = validators.unknown_codes(codes)
    if unknown:
        raise BacktestInputError(str(validators.unknown_codes_message(unknown)), field="codes")
    if not period_checked:
        check_period(codes, start, end)

    def rate(value) -> str | None:
        return None if value is None else str(value)

    return {
        "codes": codes, "start": start.isoformat(), "end": end.isoformat(), "initial_cash": int(initial_cash),
        "max_positions": int(max_positions), "cash_per_week": None if cash_per_week is None else int(cash_per_week),
        "commission": rate(commission), "tax": rate(tax), "slippage_ticks": int(slippage_ticks),
        "participation_cap": rate(participation_cap), "spread_ticks": int(spread_ticks),
        "small_cap_value": int(small_cap_value), "universe_top_n": universe_top_n,
    }


def backtest_config(run_settings: dict) -> BacktestConfig:
    """The backtester's settings from ``validated_run_settings``' dict (the site's commission rate
    when the run sets none)."""
    s = run_settings

    def rate(name: str) -> Decimal | None:
        return None if s.get(name) in (None, "") else Decimal(str(s[name]))

    commission = rate("commission")
    return BacktestConfig(
        initial_cash=int(s["initial_cash"]), max_positions=int(s["max_positions"]),
        commission=commission if commission is not None else (settings.COMMISSION_RATE or None), tax=rate("tax"),
        slippage_ticks=int(s.get("slippage_ticks") or 0),
        start=dt.date.fromisoformat(str(s["start"])), end=dt.date.fromisoformat(str(s["end"])),
        cash_per_week=None if s.get("cash_per_week") is None else int(s["cash_per_week"]),
        participation_cap=rate("participation_cap"), spread_ticks=int(s.get("spread_ticks") or 0),
        small_cap_value=int(s.get("small_cap_value") or 1_000_000_000),
    )


RUN_SETTINGS = ("codes", "start", "end", "initial_cash", "max_positions", "cash_per_week", "commission", "tax",
                "slippage_ticks", "participation_cap", "spread_ticks", "small_cap_value", "universe_top_n")


def create_backtest_run(
    owner, *, strategy_key: str, params: dict | None, config: StrategyConfig | None = None,
    sweep: BacktestSweep | None = None, **run_settings,
) -> BacktestRun:
    """Validate the inputs (the strategy's parameters, and the run settings of
    ``validated_run_settings``) and record a pending run (run it with `execute_backtest_run`)."""
    strategy_class = get_strategy(strategy_key)
    validated = strategy_class.validate_params(params or {})
    checked = validated_run_settings(**run_settings)
    fields = {name: run_settings.get(name, checked[name]) for name in RUN_SETTINGS}
    fields.update(codes=checked["codes"], participation_cap=None if checked["participation_cap"] is None
                  else Decimal(checked["participation_cap"]))
    return BacktestRun.objects.create(
        owner=owner, config=config, sweep=sweep, strategy_key=strategy_key, params=validated, **fields,
    )


def run_settings_of(run: BacktestRun) -> dict:
    """A stored run's settings in ``validated_run_settings``' form."""
    return {
        "codes": run.codes, "start": str(run.start), "end": str(run.end), "initial_cash": int(run.initial_cash),
        "max_positions": run.max_positions, "cash_per_week": None if run.cash_per_week is None else int(run.cash_per_week),
        "commission": None if run.commission is None else str(run.commission),
        "tax": None if run.tax is None else str(run.tax), "slippage_ticks": run.slippage_ticks,
        "participation_cap": None if run.participation_cap is None else str(run.participation_cap),
        "spread_ticks": run.spread_ticks, "small_cap_value": int(run.small_cap_value),
        "universe_top_n": run.universe_top_n,
    }


def _set_progress(run: BacktestRun, percent: int, status: str | None = None) -> None:
    run.progress = percent
    fields = ["progress"]
    if status:
        run.status = status
        fields.append("status")
    BacktestRun.objects.filter(pk=run.pk).update(**{name: getattr(run, name) for name in fields})


def execute_backtest_run(run: BacktestRun, on_progress: Callable[[int], object] | None = None) -> BacktestRun:
    """Load bars, run the weekly backtest, store metrics, trades and equity. A failure is stored on
    the run with its message (and re-raised for callers that want it)."""
    _set_progress(run, 5, RunStatus.RUNNING)
    try:
        data = load_market_data(run.codes, run.start, run.end, universe_top_n=run.universe_top_n)
        _set_progress(run, 40)
        config = backtest_config(run_settings_of(run))
        result = run_backtest(create_strategy(run.strategy_key, run.params), data, config).to_dict()
    except Exception as error:
        logger.warning("backtest %s failed: %s", run.pk, error)
        run.status, run.error, run.finished_at = RunStatus.FAILED, str(error), timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    run.metrics, run.benchmark = result["metrics"], result["benchmark"]
    run.trades, run.equity = result["trades"], result["equity"]
    run.status, run.progress, run.finished_at, run.error = RunStatus.DONE, 100, timezone.now(), ""
    run.save()
    if on_progress:
        on_progress(100)
    return run
