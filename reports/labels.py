"""The page's words for the Korean labels stored in a report's facts and status reason.

A report's facts are written in Korean on purpose (the model writes a Korean report from them, and the
stored facts are its evidence), so they are kept as they are; the report page shows their closed-set
labels — sides, order reasons, jobs, statuses, alert kinds, the benchmark — through this table in the
active language (Korean pages show the catalogue's Korean). Anything else (names, free text) is data
and shown as stored."""

from __future__ import annotations

import re

from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from accounts.models import BrokerMode
from orders.models import AlertKind, Job, OrderReason, OrderSide, OrderStatus, WeeklyRunStatus

from .facts.common import JOB_LABELS, REASON_LABELS, RUN_STATUS_LABELS, SIDE_LABELS
from .facts.drift import KIND_LABELS
from .facts.equity import ALL_STOCKS_BENCHMARK, UNIVERSE_BENCHMARK
from .facts.failures import ALERT_LABELS, ORDER_STATUS_LABELS
from .facts.market_analysis import SERIES_LABELS
from .facts.positions import MODE_LABELS
from .services import GENERATING, NO_API_KEY_REASON, NO_MODEL_REASON


def _by_korean(korean: dict, choices) -> dict:
    return {label: choices(code).label for code, label in korean.items() if code in choices.values}


FACT_LABELS = {
    **_by_korean(RUN_STATUS_LABELS, WeeklyRunStatus),
    **_by_korean(ORDER_STATUS_LABELS, OrderStatus),
    **_by_korean(JOB_LABELS, Job),
    **_by_korean(REASON_LABELS, OrderReason),
    **_by_korean(SIDE_LABELS, OrderSide),
    **_by_korean(ALERT_LABELS, AlertKind),
    "만료": _("expired"),  # an expired paper order
    KIND_LABELS["missing"]: _("only in the backtest (missing live)"),
    KIND_LABELS["extra"]: _("only live"),
    KIND_LABELS["matched"]: _("in both"),
    KIND_LABELS["carried"]: _("sale of last week's holding"),
    SERIES_LABELS["close"]: _("close"),
    SERIES_LABELS["volume"]: _("volume"),
    "z-점수": _("z-score"),
    UNIVERSE_BENCHMARK: _("Strategy universe, equal weight"),
    ALL_STOCKS_BENCHMARK: _("All stocks, equal weight"),
    GENERATING: _("Being written."),
    NO_MODEL_REASON: _("The plain report was written because writing without the model was requested."),
    NO_API_KEY_REASON: _("The plain report was written because OPENAI_API_KEY is not set."),
}

# "페이퍼 계좌 1": an account's label is its mode and its number in the report.
ACCOUNT_LABEL = re.compile(r"^(?P<mode>\S+) 계좌 (?P<index>\d+)$")
MODE_WORDS = {
    BrokerMode.PAPER: pgettext_lazy("account mode", "Paper"),
    BrokerMode.SIMULATED: pgettext_lazy("account mode", "KIS simulated"),
    BrokerMode.REAL: pgettext_lazy("account mode", "KIS real"),
}
MODE_BY_KOREAN = {label: mode for mode, label in MODE_LABELS.items()}


def fact_label(value):
    """`value` in the active language when it is one of the facts' labels, else as stored."""
    if not isinstance(value, str):
        return value
    if value in FACT_LABELS:
        return str(FACT_LABELS[value])
    account = ACCOUNT_LABEL.match(value)
    if account and account["mode"] in MODE_BY_KOREAN:
        mode = MODE_WORDS[MODE_BY_KOREAN[account["mode"]]]
        return gettext("%(mode)s account %(index)s") % {"mode": mode, "index": account["index"]}
    return value
