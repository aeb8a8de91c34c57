"""Positions and accounts: each account's cash (paper books or the broker's balance, counted back through
the executions), its books at each close, its value and return over the week, and the positions held
before and after it. Accounts are labelled ("페이퍼 계좌 1"), never named or numbered."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from accounts.models import BrokerAccount, BrokerMode
from market.models import PaperAccount

from .common import Closes, WeekWindow, logger, pct
from .trades import Book, Execution, executions_for, replay

MODE_LABELS = {BrokerMode.PAPER: "페이퍼", BrokerMode.SIMULATED: "모의투자", BrokerMode.REAL: "실전"}


@dataclass
class AccountState:
    label: str
    mode: str
    cash_now: int | None
    cash_source: str
    books: dict[dt.date, Book]
    later_flow: dict[dt.date, int]  # cash flow of the executions after each day


def account_cash_now(account: BrokerAccount) -> tuple[int | None, str]:
    if account.mode == BrokerMode.PAPER:
        cash = PaperAccount.objects.filter(broker_account=account).values_list("cash", flat=True).first()
        return (int(cash), "paper") if cash is not None else (None, "no paper books")
    try:
        from market.brokers import broker_for

        return int(broker_for(account).get_balance().summary.cash_deposit), "broker balance"
    except Exception as error:  # a report never fails, nor waits long, on the broker
        logger.warning("report: the balance of account %s could not be read: %s", account.pk, type(error).__name__)
        return None, "unavailable"


def account_states(accounts: list[BrokerAccount], day_points: list[dt.date], window: WeekWindow
                   ) -> tuple[list[AccountState], list[tuple[Execution, int | None]], set[str]]:
    """The accounts with something to show (executions or paper books), the week's executions with their
    realised P&L, and every code they traded."""
    states: list[AccountState] = []
    trades: list[tuple[Execution, int | None]] = []
    codes: set[str] = set()
    for index, account in enumerate(accounts, start=1):
        executions = executions_for(account)
        has_books = account.mode == BrokerMode.PAPER and PaperAccount.objects.filter(broker_account=account).exists()
        if not executions and not has_books:
            continue
        books, account_trades = replay(executions, day_points, window)
        trades += account_trades
        codes |= {execution.code for execution in executions}
        cash_now, cash_source = account_cash_now(account)
        states.append(AccountState(
            label=f"{MODE_LABELS.get(account.mode, account.mode)} 계좌 {index}", mode=account.mode,
            cash_now=cash_now, cash_source=cash_source, books=books,
            later_flow={day: sum(e.cash_flow for e in executions if e.day > day) for day in day_points},
        ))
    return states, trades, codes


def holdings_value(book: Book, closes: Closes | None, day: dt.date) -> int:
    """The holdings at the day's close (a code without a close: at cost)."""
    total = 0
    for code, quantity in book.quantity.items():
        close = closes.on(code, day) if closes else None
        total += close * quantity if close is not None else book.cost[code]
    return total


def account_values(states: list[AccountState], closes: Closes | None, day_points: list[dt.date]
                   ) -> tuple[list[dict], dict[dt.date, dict[str, int]]]:
    """Each account's facts over the week, and the cash and holdings of all accounts per day point."""
    first_point, last_point = day_points[0], day_points[-1]
    totals = {day: {"cash": 0, "holdings": 0} for day in day_points}
    account_facts = []
    for state in states:
        values = {}
        for day in day_points:
            cash = state.cash_now - state.later_flow[day] if state.cash_now is not None else None
            holdings = holdings_value(state.books[day], closes, day)
            values[day] = (cash, holdings)
            totals[day]["cash"] += cash or 0
            totals[day]["holdings"] += holdings
        (cash_start, held_start), (cash_end, held_end) = values[first_point], values[last_point]
        equity_start, equity_end = (cash_start or 0) + held_start, (cash_end or 0) + held_end
        account_facts.append({
            "label": state.label, "mode": state.mode, "cash_known": state.cash_now is not None,
            "cash_start": cash_start, "cash_end": cash_end, "holdings_value_start": held_start,
            "holdings_value_end": held_end, "equity_start": equity_start, "equity_end": equity_end,
            "pnl": equity_end - equity_start,
            "return_pct": pct(equity_end / equity_start - 1) if equity_start else None,
        })
    return account_facts, totals


def position_rows(book: Book, closes: Closes | None, day: dt.date, names: dict[str, str]) -> list[dict]:
    rows = []
    for code in sorted(book.quantity):
        quantity, cost = book.quantity[code], book.cost[code]
        close = closes.on(code, day) if closes else None
        value = close * quantity if close is not None else cost
        rows.append({
            "code": code, "name": names.get(code, ""), "quantity": quantity,
            "average_price": round(cost / quantity) if quantity else 0, "close": close, "value": value,
            "unrealized_pnl": value - cost, "unrealized_pct": pct(value / cost - 1) if cost else None,
        })
    total = sum(row["value"] for row in rows)
    for row in rows:
        row["weight_pct"] = pct(row["value"] / total) if total else None
    return rows


def merge_books(books: list[Book]) -> Book:
    merged = Book()
    for book in books:
        for code, quantity in book.quantity.items():
            merged.quantity[code] = merged.quantity.get(code, 0) + quantity
            merged.cost[code] = merged.cost.get(code, 0) + book.cost[code]
    return merged
