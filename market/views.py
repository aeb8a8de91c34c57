from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from accounts.selectors import broker_account_for, default_broker_account

from . import indicators, selectors
from .brokers import broker_for
from .gateway import BrokerError, user_message_for
from .kis import KisError
from .krx import SEOUL, price_limits
from .krx.calendar import is_regular_session
from .services import test_broker_connection
from .streaming import sse, store
from .streaming.sources import stream_source_for

SEARCH_LIMIT = 20
MAX_QUERY_LENGTH = 50
ANALYSIS_WEEKS = 12
QUOTE_POLL_SECONDS = 30


def _search_context(request) -> dict:
    """The results for ?q=; a query longer than the API's cap is refused with the API's message
    (`error`), not cut and searched."""
    query = request.GET.get("q", "").strip()
    if len(query) > MAX_QUERY_LENGTH:
        error = _("The search text is too long (at most %(count)d characters).") % {"count": MAX_QUERY_LENGTH}
        return {"query": "", "error": error, "results": [], "total": 0, "limit": SEARCH_LIMIT}
    ids = selectors.search_instrument_ids(query) if query else []
    return {
        "query": query,
        "results": selectors.instruments_by_ids(ids[:SEARCH_LIMIT]),
        "total": len(ids),
        "limit": SEARCH_LIMIT,
    }


@login_required
@require_safe
def index(request):
    """종목 검색: the search box; with ?q= (no JavaScript, or back from a detail page) the results too."""
    context = _search_context(request)
    return render(request, "market/index.html", context, status=400 if context.get("error") else 200)


@login_required
@require_safe
def search(request):
    """HTMX: the live search results for ?q=, keeping the page URL (?q=) in step for the back button."""
    context = _search_context(request)
    if context.get("error"):  # the input's maxlength keeps the browser below the cap
        return render(request, "market/partials/search_results.html", context, status=400)
    response = render(request, "market/partials/search_results.html", context)
    if request.htmx:
        url = reverse("market:index")
        response["HX-Replace-Url"] = f"{url}?{urlencode({'q': context['query']})}" if context["query"] else url
    return response


def _instrument_or_404(code: str):
    instrument = selectors.instrument_by_code(code)
    if instrument is None:
        raise Http404(_("Unknown instrument code: %(code)s") % {"code": code})
    return instrument


def _chart_payload(code: str) -> dict | None:
    """Dates, daily candles (open, high, low, close), volumes, MA20, Bollinger (20, 2σ), z-score and
    outlier markers for the chart (static/js/price_chart.js draws them)."""
    series = selectors.chart_series(code)
    if not series:
        return None
    dates, opens, highs, lows, closes, volumes = (list(column) for column in zip(*series, strict=True))
    computed = indicators.indicators(closes, indicators.DEFAULT_WINDOW, indicators.DEFAULT_WIDTH)
    outliers: dict[str, list[dict]] = {}
    for outlier in selectors.outliers_for(code):
        outliers.setdefault(outlier.date.isoformat(), []).append(
            {
                "series": outlier.series,
                "method": outlier.get_method_display(),
                "value": outlier.value,
                "score": round(outlier.score, 2),
            }
        )
    return {
        "dates": [day.isoformat() for day in dates],
        "open": opens,
        "high": highs,
        "low": lows,
        "close": closes,
        "volume": volumes,
        "ma": indicators.rounded(computed.middle, 1),
        "upper": indicators.rounded(computed.upper, 1),
        "lower": indicators.rounded(computed.lower, 1),
        "z": indicators.rounded(computed.z, 3),
        "outliers": outliers,
        "window": indicators.DEFAULT_WINDOW,
        "threshold": indicators.DEFAULT_WIDTH,
        "labels": {
            "open": _("Open"),
            "high": _("High"),
            "low": _("Low"),
            "close": _("Close"),
            "ma": _("MA %(window)d") % {"window": indicators.DEFAULT_WINDOW},
            "upper": _("BB upper"),
            "lower": _("BB lower"),
            "volume": _("Volume"),
            "outlier": _("Outlier"),
            "z": _("z-score"),
            "close_series": _("close"),
            "volume_series": _("volume"),
        },
    }


def _live_payload(user, code: str, chart: dict | None) -> dict:
    """What the live part of 종목 상세 starts from (static/js/live_market.js): the stream's address and
    source (the user's default account: the paper simulator or the account's KIS session), today's stored
    1-minute candles, the previous close and its daily limits, the last stored close for a closed market,
    and the page's words."""
    source, _account = stream_source_for(default_broker_account(user))
    now = timezone.now()
    today = now.astimezone(SEOUL).date()
    previous_close = store.previous_closes([code], today).get(code)
    lower, upper = price_limits(previous_close) if previous_close else (None, None)
    return {
        "code": code,
        "source": source,
        "stream_url": reverse("stream_market", args=[code]),
        "day": today.isoformat(),
        "session": sse.session_state(source, now),
        "bars": sse.intraday_bars_json(source, code, today),
        "previous_close": previous_close,
        "limits": {"lower": lower, "upper": upper},
        "last_close": chart["close"][-1] if chart else None,
        "last_close_date": chart["dates"][-1] if chart else None,
        "labels": {
            "connecting": _("Connecting to live prices…"),
            "live": _("Live"),
            "last_trade": _("last trade {time}"),
            "simulated": _("Simulated prices (paper broker): a random walk from the demo market, not real trades"),
            "reconnecting": _("Reconnecting… (cut since {since})"),
            "gap": _("Gap in the stream {since}–{until}"),
            "market_closed": _("Market closed. Last close {price} KRW ({date})."),
            "market_closed_no_close": _("Market closed."),
            "unavailable": _("Live prices unavailable: {reason}"),
            "polling": _("The quote refreshes every %(seconds)d seconds instead.") % {"seconds": QUOTE_POLL_SECONDS},
            "waiting": _("Waiting for the first trade…"),
            "stale": _("No trade for {seconds} s"),
            "halted": _("Trading halted"),
            "candles": _("1-minute candles"),
            "open": _("Open"), "high": _("High"), "low": _("Low"), "close": _("Close"),
            "volume": _("Volume"), "previous_close": _("Previous close"),
            "upper_limit": _("Upper limit"), "lower_limit": _("Lower limit"), "vi": _("VI triggered"),
        },
    }


@login_required
@require_safe
def detail(request, code: str):
    """종목 상세: chart with MA/Bollinger, z-score panel, outliers, latest quote and weekly analysis; the
    live intraday chart, quote and 호가 (market.streaming.sse) on top."""
    instrument = _instrument_or_404(code)
    chart = _chart_payload(instrument.code)
    analyses = selectors.weekly_analysis_for(instrument.code, ANALYSIS_WEEKS)
    return render(
        request,
        "market/detail.html",
        {
            "instrument": instrument,
            "chart": chart,
            "last_date": chart["dates"][-1] if chart else None,
            "bar_count": len(chart["dates"]) if chart else 0,
            "analyses": analyses,
            "analysis_weeks": ANALYSIS_WEEKS,
            "live": _live_payload(request.user, instrument.code, chart),
        },
    )


@login_required
@require_safe
def quote(request, code: str):
    """HTMX: the latest-quote box. It polls itself every 30 s only during the KRX regular session; the
    box sent after the close carries no trigger, so polling stops by itself."""
    instrument = _instrument_or_404(code)
    account = default_broker_account(request.user)
    now = timezone.now()
    context = {
        "instrument": instrument,
        "account": account,
        "quote": None,
        "error": "",
        "live": is_regular_session(now),
        "fetched_at": now,
        "poll_seconds": QUOTE_POLL_SECONDS,
    }
    if account is not None:
        try:
            context["quote"] = broker_for(account).get_quote(instrument.code)
        except (BrokerError, KisError) as error:
            context["error"] = user_message_for(error)
    return render(request, "market/partials/quote_box.html", context)


@login_required
@require_POST
def connection_test(request, pk: int):
    """HTMX: the connection-test result for one of the user's broker accounts."""
    account = broker_account_for(request.user, pk)
    if account.owner_id != request.user.pk:
        return render(request, "404.html", status=404)
    result = test_broker_connection(account)
    return render(request, "market/partials/connection_test.html", {"account": account, "result": result})
