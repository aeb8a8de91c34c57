"""Benchmark: mean reversion on a large synthetic universe, vectorised engine vs the per-symbol
pandas form (the design's ``generate_signals`` per symbol + the reference backtest).

Only Django's BaseCommand is used; everything measured is pure Python/numpy/pandas.

What is timed:

* vectorised: ``MeanReversion.signals_and_scores`` on the whole (dates × symbols) close matrix +
  ``strategies.backtest.simulate`` (the full weekly backtest with stop-loss/take-profit/signal
  checks, costs, equity, metrics and the buy-and-hold benchmark). The z-score, the weekly loop and
  the buy-and-hold curve are compiled numba kernels (``strategies/library/kernels.py``,
  ``strategies/backtest/kernels.py``) using every core (``NUMBA_NUM_THREADS``). Run ``--repeat``
  times in one process; the first run is "cold" (fresh process: it loads the compiled kernels from
  numba's disk cache, or compiles them once on a new machine), the best is a worker's steady state.
* per-symbol form: ``generate_signals``/``generate_scores`` per symbol (pandas rolling mean and
  std) timed on ``--subset`` symbols and extrapolated linearly (it is per symbol), plus the
  reference backtest (plain Python loops over weeks, days, symbols and positions) measured on the
  WHOLE universe, fed with the same signals (converted to its per-symbol form, not timed).
  ``--full-reference`` also runs ``generate_signals`` on every symbol (measured, no extrapolation)
  and checks that both engines give the same trades on the whole universe.

Data: ``--data random`` (default) is a numpy random walk on the KRX tick grid
(``strategies.backtest.synthetic.random_walk_market``), because ``market.demo`` is limited to 1,009
symbols and steps day by day; ``--data demo`` uses ``market.demo`` (at most 1,009 symbols).
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from strategies.backtest import BacktestConfig, simulate
from strategies.backtest.costs import settlement_dates
from strategies.backtest.reference import per_symbol_signals, signals_from_matrices, simulate_reference
from strategies.backtest.synthetic import demo_market, krx_days, random_walk_market
from strategies.library import get_strategy


class Command(BaseCommand):
    help = "Time mean reversion (signals + weekly backtest) vectorised vs the per-symbol pandas form."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", type=int, default=2500)
        parser.add_argument("--days", type=int, default=5000, help="KRX trading days (ending 2026-10-30)")
        parser.add_argument("--subset", type=int, default=50, help="symbols for the per-symbol signal timing")
        parser.add_argument("--repeat", type=int, default=3, help="vectorised runs")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--data", choices=("random", "demo"), default="random")
        parser.add_argument("--max-positions", type=int, default=10)
        parser.add_argument("--full-reference", action="store_true", help="per-symbol signals on every symbol too")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--vectorbt", action="store_true",
                            help="also time vectorbt on the same matrix (pip install -r requirements-bench.txt)")

    def handle(self, *args, **opt):
        symbols, n_days, subset = opt["symbols"], opt["days"], opt["subset"]
        if symbols < 1 or n_days < 30 or not 1 <= subset <= symbols or opt["repeat"] < 1:
            raise CommandError("need --symbols >= 1, --days >= 30, 1 <= --subset <= --symbols, --repeat >= 1")
        say = (lambda *a: None) if opt["json"] else (lambda text: self.stdout.write(text))
        report: dict = {"symbols": symbols, "days": n_days, "data": opt["data"]}

        t = time.perf_counter()
        days = krx_days(n_days)
        calendar_s = time.perf_counter() - t
        t = time.perf_counter()
        if opt["data"] == "demo":
            if symbols > 1009:
                raise CommandError("--data demo has at most 1,009 symbols; use --data random")
            data = demo_market(symbols, days)
            source = "market.demo"
        else:
            data = random_walk_market(symbols, days, seed=opt["seed"])
            source = "numpy random walk on tick (strategies.backtest.synthetic)"
        gen_s = time.perf_counter() - t
        settlement_dates(data.dates[:1])  # the KRX sessions used by the tax table (cached)
        nan_share = 1 - float(data.valid.mean())
        say(
            f"data: {source}, {symbols:,} symbols × {n_days:,} KRX trading days ({days[0]} .. {days[-1]}), "
            f"{nan_share:.1%} of cells without a bar (suspensions, listings, delistings); "
            f"calendar {calendar_s:.1f} s, generation {gen_s:.1f} s"
        )
        report.update(source=source, first_day=str(days[0]), last_day=str(days[-1]), nan_share=nan_share,
                      generation_s=gen_s)

        strategy = get_strategy("mean_reversion")()
        config = BacktestConfig(max_positions=opt["max_positions"]).with_exits(strategy)
        say(f"strategy: {strategy!r}; initial cash {config.initial_cash:,} KRW, max {config.max_positions} positions")

        runs = []
        result = None
        for _ in range(opt["repeat"]):
            t0 = time.perf_counter()
            signals, scores = strategy.signals_and_scores(data.close)
            t1 = time.perf_counter()
            result = simulate(data, signals, scores, config, params=strategy.params)
            t2 = time.perf_counter()
            runs.append((t1 - t0, t2 - t1, t2 - t0))
        totals = [r[2] for r in runs]
        best = min(runs, key=lambda r: r[2])
        for i, (sig_s, bt_s, total_s) in enumerate(runs, 1):
            label = " (cold)" if i == 1 else ""
            say(f"vectorised run {i}{label}: signals {sig_s:.3f} s + backtest {bt_s:.3f} s = {total_s:.3f} s")
        m = result.metrics
        say(
            f"  {m['n_trades']:,} trades, total return {m['total_return']:.1%}, "
            f"max drawdown {m['max_drawdown']:.1%}; buy-and-hold {result.benchmark['total_return']:.1%}"
        )
        report["vectorised"] = {
            "runs": [{"signals_s": a, "backtest_s": b, "total_s": c} for a, b, c in runs],
            "cold_s": totals[0], "best_s": best[2], "median_s": statistics.median(totals), "trades": m["n_trades"],
        }

        # --- the per-symbol pandas form -----------------------------------------------------------
        sub = data.select(data.codes[:subset])
        t = time.perf_counter()
        sub_signals, sub_scores = per_symbol_signals(strategy, sub)
        per_symbol_s = time.perf_counter() - t
        signals_est = per_symbol_s / subset * symbols
        say(
            f"per-symbol generate_signals on {subset} symbols: {per_symbol_s:.3f} s "
            f"({per_symbol_s / subset * 1000:.2f} ms/symbol) → {symbols:,} symbols: {signals_est:.1f} s (extrapolated)"
        )
        t = time.perf_counter()
        sub_ref = simulate_reference(sub, sub_signals, sub_scores, config, params=strategy.params)
        sub_ref_s = time.perf_counter() - t
        sub_vec = simulate(sub, *strategy.signals_and_scores(sub.close), config, params=strategy.params)
        same_sub = sub_ref.trades.equals(sub_vec.trades)
        eq_diff_sub = float(np.max(np.abs(sub_ref.equity.to_numpy() / sub_vec.equity.to_numpy() - 1)))
        say(f"  check on the subset: same trades {same_sub} ({len(sub_ref.trades):,}), equity max rel. diff {eq_diff_sub:.1e}")
        naive = (per_symbol_s + sub_ref_s) / subset * symbols
        say(
            f"  reference backtest on the subset: {sub_ref_s:.3f} s; naive linear extrapolation of the whole "
            f"per-symbol form: {naive:.1f} s (overstated: the backtest's cost does not grow linearly with the symbols)"
        )

        if opt["full_reference"]:
            t = time.perf_counter()
            ref_signals, ref_scores = per_symbol_signals(strategy, data)
            signals_s = time.perf_counter() - t
            say(f"per-symbol generate_signals on all {symbols:,} symbols: {signals_s:.1f} s (measured)")
        else:
            ref_signals, ref_scores = signals_from_matrices(data, signals, scores)
            signals_s = signals_est
        t = time.perf_counter()
        ref = simulate_reference(data, ref_signals, ref_scores, config, params=strategy.params)
        ref_bt_s = time.perf_counter() - t
        same = ref.trades.equals(result.trades)
        eq_diff = float(np.max(np.abs(ref.equity.to_numpy() / result.equity.to_numpy() - 1)))
        say(f"reference backtest on all {symbols:,} symbols: {ref_bt_s:.2f} s (measured); same trades as the "
            f"vectorised engine: {same}, equity max rel. diff {eq_diff:.1e}")
        ref_total = signals_s + ref_bt_s
        speedup_best, speedup_cold = ref_total / best[2], ref_total / totals[0]
        say(f"per-symbol pandas form total: {ref_total:.2f} s")
        say(
            f"RESULT: vectorised {best[2]:.3f} s (best of {len(runs)}; cold {totals[0]:.3f} s; target < 2 s) vs "
            f"per-symbol {ref_total:.1f} s: speed-up {speedup_best:.0f}× (cold {speedup_cold:.0f}×; target ≥ 50×)"
        )
        report["per_symbol"] = {
            "subset": subset, "subset_signals_s": per_symbol_s, "subset_reference_backtest_s": sub_ref_s,
            "naive_extrapolation_s": naive, "signals_s": signals_s,
            "signals_extrapolated": not opt["full_reference"], "reference_backtest_s": ref_bt_s, "total_s": ref_total,
            "same_trades": same, "equity_max_rel_diff": eq_diff, "subset_same_trades": same_sub,
        }
        report["speedup_best"] = speedup_best
        report["speedup_cold"] = speedup_cold
        if opt["vectorbt"]:
            report["vectorbt"] = self._vectorbt(data, strategy, config, opt["repeat"], say)
        if opt["json"]:
            self.stdout.write(json.dumps(report))

    @staticmethod
    def _vectorbt(data, strategy, config, repeat: int, say) -> dict:
        """vectorbt (numba) on the same close matrix: its MA/MSTD indicators for the z-score, then
        ``Portfolio.from_signals`` with the same stop-loss/take-profit, shared cash and commission.
        Its rules are vectorbt's (daily entries at the close, 1/max_positions of the value per entry,
        no weekly exit, no tax): a reference for the cost of a general-purpose engine, not the same
        trades."""
        try:
            import pandas as pd
            import vectorbt as vbt
        except ImportError:
            say("vectorbt: not installed (pip install -r requirements-bench.txt)")
            return {"installed": False}
        close = pd.DataFrame(data.close, index=pd.DatetimeIndex(data.dates))
        window, threshold = strategy.window, strategy.z_threshold
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            mean = vbt.MA.run(close, window).ma.to_numpy()
            std = vbt.MSTD.run(close, window, ddof=1).mstd.to_numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                z = (close.to_numpy() - mean) / std
            entries, exits = pd.DataFrame(z < -threshold, index=close.index), pd.DataFrame(z > threshold, index=close.index)
            t1 = time.perf_counter()
            portfolio = vbt.Portfolio.from_signals(
                close, entries, exits, sl_stop=-float(config.stop_loss), tp_stop=float(config.take_profit),
                init_cash=config.initial_cash, cash_sharing=True, group_by=True, size=1 / config.max_positions,
                size_type="percent", fees=float(config.fee_model.commission_rate), freq="1D",
            )
            portfolio.total_return()
            runs.append((t1 - t0, time.perf_counter() - t1))
        best = min(runs, key=sum)
        say(f"vectorbt {vbt.__version__} (its own daily rules; best of {repeat}): indicators {best[0]:.2f} s + "
            f"portfolio {best[1]:.2f} s = {sum(best):.2f} s (first run {sum(runs[0]):.2f} s, with numba compilation)")
        return {"installed": True, "version": vbt.__version__, "best_s": sum(best), "first_s": sum(runs[0])}
