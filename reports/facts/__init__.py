"""The facts of one user's trading week, computed in code from stored data (never by the model).

Reads only: nothing here places, syncs or changes an order, and no broker is called for a paper
account (its books are read from the database). The facts are a JSON-friendly dict:

- ``week``: ISO week, its KRX trading days, ``as_of`` (the last of them with stored bars) and
  whether the week is complete.
- ``portfolio``: equity (cash + holdings at the close) at the previous week's last close
  (``start``) and at ``as_of`` (``end``), cash, holdings value, P&L and return; the same per account
  under ``accounts`` (labelled "페이퍼 계좌 1"; no account number, name or key).
- ``benchmark``: the equal-weight return of the user's strategy universes (or of every stored
  stock when the user has no strategy) over the same closes, and the excess return.
- ``positions_before`` / ``positions_after``: holdings at those two closes.
- ``trades``: the week's executions with the reason (entry, stop-loss, …, 수동 for orders not
  placed by the auto-trader) and, for sells, the realised P&L (average cost incl. buy commission).
- ``strategies``: the user's strategies with the week's runs and the signals behind their orders.
- ``analysis``: the market's weekly statistics: volatility, outliers, the most extreme z-scores
  (stored rows of `market.WeeklyAnalysis`, else computed in memory by `market.analysis.analyze`).
- ``failures``: rejected / unknown orders, failed / blocked / skipped runs, trading alerts.
- ``drift``: per strategy, the week's live trading against its backtest (`orders.drift`, stored after
  the week's exit): realised P&L gap in KRW and bp of the cash invested, slippage, missing and extra
  trades, the alert; empty when the week was not compared.
- ``series``: equity, cash and the benchmark per trading day, for the charts.

Money in integer KRW; returns as percentages rounded to 2 decimals (``*_pct``).

Where the cash comes from: a paper account's cash is `PaperAccount.cash`; a KIS account's is read
once from the broker (`get_balance`, a read) and counted back through the stored fills. When it
cannot be read the account's cash is reported as unknown and its equity covers the holdings only.

One module per section: ``trades`` (executions, the replayed books, trade rows), ``positions``
(accounts, cash, positions), ``equity`` (portfolio, benchmark, chart series), ``strategy_runs``
(runs and signals), ``market_analysis``, ``failures``, ``drift`` (the stored live-vs-backtest
comparison); ``common`` holds the week, labels and look-ups they share, ``activity`` who has a week
to report, and ``build`` puts the sections together.
"""

from market.analysis import iso_week_label

from .activity import has_activity, users_with_activity
from .build import FACTS_SCHEMA, build_facts
from .common import Closes, WeekWindow, pct, rounded, week_window
from .market_analysis import market_facts
from .trades import Book, Execution, executions_for

__all__ = [
    "FACTS_SCHEMA",
    "Book",
    "Closes",
    "Execution",
    "WeekWindow",
    "build_facts",
    "executions_for",
    "has_activity",
    "iso_week_label",
    "market_facts",
    "pct",
    "rounded",
    "users_with_activity",
    "week_window",
]
