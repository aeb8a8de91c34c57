"""Benchmark: a parameter sweep of mean reversion in one shared pass (``strategies.research.sweep``),
at full scale and against vectorbt's parameter broadcasting on a size vectorbt holds in memory.

Only Django's BaseCommand is used; everything measured is pure numpy/numba.

* Full scale (defaults): 10 windows × 10 thresholds × 10 stop-loss/take-profit pairs = 1,000 sets
  over 2,500 symbols × 5,000 KRX days of a synthetic random walk on the tick grid
  (``strategies.backtest.synthetic.random_walk_market``). Timed: ``run_sweep`` from the price
  matrices to every set's daily equity and metrics (the weekly rules, costs, ranking). Peak memory
  is the process's (``ru_maxrss``: data generation included).
* Comparison (defaults 100 symbols × 2,500 days × 100 sets = 5 windows × 5 thresholds × 4 exit
  pairs): the same sweep by ``run_sweep`` and by vectorbt (requirements-bench.txt) — its MA/MSTD
  indicators over the windows, the thresholds and the exit pairs broadcast as column levels, one
  ``Portfolio.from_signals`` over every (set, symbol) column grouped by set with shared cash. Its
  rules are vectorbt's own (daily entries, no weekly exit, no tax), so this compares the cost of
  the two engines, not their trades. Best of ``--repeat`` runs each (the first includes numba's
  compilation or cache load).
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from strategies.backtest import BacktestConfig
from strategies.backtest.costs import settlement_dates
from strategies.backtest.synthetic import krx_days, random_walk_market
from strategies.research.sweep import run_sweep

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 4096.0
TARGET_SPEEDUP = 10.0


def mean_reversion_grid(windows: int, thresholds: int, exits: int) -> dict[str, list]:
    """windows from 10 by 5, thresholds from 1.0 by 0.25, exit pairs: stop-loss −3 %… × take-profit."""
    stops = [-0.03, -0.05, -0.07, -0.10, -0.15]
    takes = [0.05, 0.08, 0.11, 0.15, 0.20]
    pairs = [(s, t) for t in takes for s in stops][:exits]
    grid = {
        "window": [10 + 5 * i for i in range(windows)],
        "z_threshold": [round(1.0 + 0.25 * i, 2) for i in range(thresholds)],
        "stop_loss": sorted({s for s, _ in pairs}),
        "take_profit": sorted({t for _, t in pairs}),
    }
    return grid


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Command(BaseCommand):
    help = "Time a 1,000-set mean-reversion sweep (2,500 symbols × 5,000 days) and compare with vectorbt."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", type=int, default=2500)
        parser.add_argument("--days", type=int, default=5000, help="KRX trading days (ending 2026-10-30)")
        parser.add_argument("--windows", type=int, default=10)
        parser.add_argument("--thresholds", type=int, default=10)
        parser.add_argument("--exits", type=int, default=10, help="stop-loss/take-profit pairs (up to 25)")
        parser.add_argument("--max-positions", type=int, default=10)
        parser.add_argument("--compare-symbols", type=int, default=100)
        parser.add_argument("--compare-days", type=int, default=2500)
        parser.add_argument("--no-vectorbt", action="store_true",
                            help="time only this system on the comparison size (vectorbt_seconds: null)")
        parser.add_argument("--repeat", type=int, default=2, help="runs of each side of the comparison")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **opt):
        if opt["symbols"] < 1 or opt["days"] < 60 or not 1 <= opt["exits"] <= 25 or opt["repeat"] < 1:
            raise CommandError("need --symbols >= 1, --days >= 60, 1 <= --exits <= 25, --repeat >= 1")
        say = (lambda text: None) if opt["json"] else (lambda text: self.stdout.write(text))
        config = BacktestConfig(max_positions=opt["max_positions"])
        grid = mean_reversion_grid(opt["windows"], opt["thresholds"], opt["exits"])
        sets = int(np.prod([len(v) for v in grid.values()]))
        # Pairs beyond the first `exits` are not in the product of their stop-losses × take-profits
        # unless they fill it: say what ran.
        say(f"그리드: {', '.join(f'{k}={len(v)}개' for k, v in grid.items())} → {sets:,}개 조합")

        t0 = time.perf_counter()
        data = random_walk_market(opt["symbols"], krx_days(opt["days"]), seed=opt["seed"])
        settlement_dates(data.dates[:1])  # the KRX sessions of the tax table (cached)
        data_seconds = time.perf_counter() - t0
        say(f"데이터: {opt['symbols']:,}종목 × {opt['days']:,}거래일 생성 {data_seconds:.1f}초")

        t0 = time.perf_counter()
        result = run_sweep("mean_reversion", grid, data, config)
        seconds = time.perf_counter() - t0
        rss = peak_rss_mb()
        best = result.best_index("sharpe")
        say(f"스윕: {sets:,}개 조합 {seconds:.2f}초 (목표 {TARGET_SECONDS:.0f}초 미만), "
            f"최대 메모리 {rss:,.0f} MB (목표 {TARGET_RSS_MB:,.0f} MB 미만)")
        say(f"  최고 샤프 조합: {_params_text(result.param_sets[best], result.names)} → 샤프 "
            f"{_num(result.metrics[best]['sharpe'])}, 총수익률 {_pct(result.metrics[best]['total_return'])}")
        report = {
            "sets": sets, "symbols": opt["symbols"], "days": opt["days"], "seconds": round(seconds, 3),
            "data_seconds": round(data_seconds, 3), "peak_rss_mb": round(rss, 1),
            "target_seconds": TARGET_SECONDS, "target_rss_mb": TARGET_RSS_MB,
            "meets_targets": seconds < TARGET_SECONDS and rss < TARGET_RSS_MB,
        }
        del data, result

        report.update(self._compare(opt, say))
        if opt["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))

    def _compare(self, opt, say) -> dict:
        grid = mean_reversion_grid(5, 5, 4)
        sets = int(np.prod([len(v) for v in grid.values()]))
        data = random_walk_market(opt["compare_symbols"], krx_days(opt["compare_days"]), seed=opt["seed"])
        config = BacktestConfig(max_positions=opt["max_positions"])
        ours = []
        for _ in range(opt["repeat"]):
            t0 = time.perf_counter()
            run_sweep("mean_reversion", grid, data, config)
            ours.append(time.perf_counter() - t0)
        out = {"compare_symbols": opt["compare_symbols"], "compare_days": opt["compare_days"], "compare_sets": sets,
               "ours_seconds": round(min(ours), 4), "vectorbt_seconds": None, "speedup": None}
        say(f"비교 크기 ({opt['compare_symbols']}종목 × {opt['compare_days']:,}거래일 × {sets}개 조합): "
            f"이 시스템 {min(ours):.3f}초")
        try:
            if opt["no_vectorbt"]:
                return out
            import vectorbt as vbt
        except ImportError:
            say("vectorbt: 설치되지 않았습니다 (pip install -r requirements-bench.txt)")
            return out
        theirs = []
        for _ in range(opt["repeat"]):
            t0 = time.perf_counter()
            _vectorbt_sweep(vbt, data, grid, config)
            theirs.append(time.perf_counter() - t0)
        out["vectorbt_seconds"] = round(min(theirs), 4)
        out["vectorbt_version"] = vbt.__version__
        out["speedup"] = round(min(theirs) / min(ours), 1)
        out["meets_speedup"] = out["speedup"] >= TARGET_SPEEDUP
        say(f"  vectorbt {vbt.__version__} {min(theirs):.2f}초 ({opt['repeat']}회 중 최고) → 이 시스템이 "
            f"{out['speedup']:.1f}배 빠름 (목표 {TARGET_SPEEDUP:.0f}배 이상)")
        return out


def _vectorbt_sweep(vbt, data, grid: dict[str, list], config: BacktestConfig) -> None:
    """The same grid in vectorbt: windows through its indicators' parameter lists, thresholds and
    exit pairs as broadcast column levels, one portfolio grouped by set with shared cash."""
    import pandas as pd

    close = pd.DataFrame(data.close, index=pd.DatetimeIndex(data.dates), columns=list(data.codes))
    ma = vbt.MA.run(close, window=grid["window"]).ma
    std = vbt.MSTD.run(close, window=grid["window"], ddof=1).mstd
    z = (close.vbt.tile(len(grid["window"]), keys=ma.columns.levels[0]) - ma.to_numpy()) / std.to_numpy()
    thresholds = pd.Index(grid["z_threshold"], name="z_threshold")
    entries = z.vbt.combine(list(grid["z_threshold"]), combine_func=lambda a, t: a < -t, keys=thresholds)
    exits = z.vbt.combine(list(grid["z_threshold"]), combine_func=lambda a, t: a > t, keys=thresholds)
    pairs = [(s, t) for s in grid["stop_loss"] for t in grid["take_profit"]]
    keys = pd.MultiIndex.from_tuples(pairs, names=["stop_loss", "take_profit"])
    entries, exits = entries.vbt.tile(len(pairs), keys=keys), exits.vbt.tile(len(pairs), keys=keys)
    columns_per_pair = entries.shape[1] // len(pairs)
    sl = np.repeat([-s for s, _ in pairs], columns_per_pair)
    tp = np.repeat([t for _, t in pairs], columns_per_pair)
    set_levels = [name for name in entries.columns.names if name not in (None, close.columns.name)]
    portfolio = vbt.Portfolio.from_signals(
        pd.DataFrame(np.tile(close.to_numpy(), entries.shape[1] // close.shape[1]), index=close.index,
                     columns=entries.columns),
        entries, exits, sl_stop=sl[None, :], tp_stop=tp[None, :], init_cash=config.initial_cash,
        cash_sharing=True, group_by=set_levels, size=1 / config.max_positions, size_type="percent",
        fees=float(config.fee_model.commission_rate), freq="1D",
    )
    portfolio.total_return()


def _params_text(params: dict, names) -> str:
    return ", ".join(f"{name}={params[name]}" for name in names)


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"
