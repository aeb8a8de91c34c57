import json
import re
from dataclasses import asdict
from datetime import date

from django.db.models import Count, Max, Min
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import generics, serializers
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import broker_accounts_for, default_broker_account
from trading_site.api import ErrorSerializer, ValidationErrorSerializer

from . import selectors
from .brokers import broker_for
from .gateway import BrokerError, user_message_for
from .kis import KisDeadlineExceeded, KisError
from .models import BarSource, Instrument, Outlier, WeeklyAnalysis
from .services import test_broker_connection


@extend_schema_field({"type": "string", "format": "decimal", "description": "a decimal number as text, as the "
                                                                      "broker gives it (any precision)"})
class DecimalTextField(serializers.CharField):
    """A broker's decimal as text: documented without DRF's digit limits, which the answer need not keep."""


class HoldingSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    sellable_quantity = serializers.IntegerField()
    average_price = DecimalTextField()
    purchase_amount = serializers.IntegerField()
    current_price = serializers.IntegerField()
    evaluation_amount = serializers.IntegerField()
    profit_amount = serializers.IntegerField()
    profit_rate = DecimalTextField(help_text="percent")
    today_bought = serializers.IntegerField()
    today_sold = serializers.IntegerField()


class ConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    mode = serializers.CharField(help_text="paper, simulated or real")
    cash = serializers.IntegerField(help_text="cash deposit, KRW")
    total_evaluation = serializers.IntegerField(help_text="KRW")
    holdings = HoldingSerializer(many=True)
    error = serializers.CharField(allow_blank=True, help_text="the broker's error, in Korean; empty when ok")
    error_code = serializers.CharField(allow_blank=True, help_text="the broker's error code, when it gave one")


class ConnectionTestErrorSerializer(ConnectionTestSerializer):
    detail = serializers.CharField(help_text="the same message as `error`")


class ConnectionTestView(APIView):
    """Issue (or reuse) a token and read the balance of one of your broker accounts."""

    @extend_schema(request=None, responses={
        200: OpenApiResponse(ConnectionTestSerializer, description="cash and holdings"),
        502: OpenApiResponse(ConnectionTestSerializer,
                             description="the broker refused or failed: `ok` false, the message in `error`"),
        504: OpenApiResponse(ConnectionTestErrorSerializer,
                             description="the broker did not answer within BROKER_WEB_DEADLINE_SECONDS: `ok` "
                                         "false, the Korean message in `error` and `detail`"),
    })
    def post(self, request, pk: int):
        account = broker_accounts_for(request.user).filter(owner=request.user, pk=pk).first()
        if account is None:
            raise NotFound()
        result = test_broker_connection(account)
        body = asdict(result)
        body["holdings"] = [
            {**holding, "average_price": str(holding["average_price"]), "profit_rate": str(holding["profit_rate"])}
            for holding in body["holdings"]
        ]
        if result.ok:
            return Response(body)
        if result.error_code == KisDeadlineExceeded.code:
            return Response({**body, "detail": result.error}, status=504)
        return Response(body, status=502)


# ------------------------------------------------------------------------------------------------ market data
# Reads of instruments, bars, quotes and weekly analysis. Authentication as for the rest of the API
# (JWT or session). Bad parameters answer 400 {"detail": "..."}; an unknown code 404 {"detail": "..."}.

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_ANALYSIS_WEEKS = 520
MAX_QUERY_LENGTH = 50
_JSON_SEPARATORS = (",", ":")
PRICE_POINT = '{"date":"%s","close":%d}'
# `fields` of the bars: names of selectors.BAR_FIELDS separated by commas (spaces and empty names ignored).
_BAR_FIELD = "(" + "|".join(selectors.BAR_FIELDS) + ")"
BAR_FIELDS_PATTERN = rf"^ *({_BAR_FIELD} *)?(, *({_BAR_FIELD} *)?)*$"
SOURCE_HELP = (
    "where the prices come from: demo = the demo market's synthetic prices (not real), csv = imported from a "
    "CSV file, kis = from KIS. A code's series is never a mix of demo and real bars."
)


class BadRequest(APIException):
    status_code = 400
    default_detail = "Bad request."
    default_code = "bad_request"


class NoBrokerAccount(APIException):
    status_code = 409
    default_detail = "Add a broker account first."
    default_code = "no_broker_account"


def _json(body) -> HttpResponse:
    """A JSON response without DRF's renderer: the hot paths build plain lists and dump them once."""
    return HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=_JSON_SEPARATORS), content_type="application/json"
    )


def _parse_date(params, name: str) -> date | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not ISO_DATE.fullmatch(value):
        raise BadRequest(
            _("%(name)s must be a date in the form YYYY-MM-DD, got “%(value)s”.") % {"name": name, "value": value[:20]}
        )
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(_("%(name)s is not a valid date: %(value)s.") % {"name": name, "value": value}) from None


def _date_range(params) -> tuple[date | None, date | None]:
    start, end = _parse_date(params, "start"), _parse_date(params, "end")
    if start and end and start > end:
        raise BadRequest(_("start (%(start)s) must not be after end (%(end)s).") % {"start": start, "end": end})
    return start, end


def _instrument_or_404(code: str) -> Instrument:
    instrument = selectors.instrument_by_code(code)
    if instrument is None:
        raise NotFound(_("Unknown instrument code: %(code)s") % {"code": code[:12]})
    return instrument


# The API's one error body (`{"detail": "..."}`), under the name this module used to give it.
MarketErrorSerializer = ErrorSerializer


class PricePointSerializer(serializers.Serializer):
    date = serializers.DateField()
    close = serializers.IntegerField(help_text="close in KRW")


class PricesSerializer(serializers.Serializer):
    prices = PricePointSerializer(many=True)
    source = serializers.ChoiceField(choices=BarSource.choices, help_text=SOURCE_HELP)


class InstrumentSerializer(serializers.ModelSerializer):
    source = serializers.ChoiceField(choices=BarSource.choices, read_only=True, help_text=SOURCE_HELP)

    class Meta:
        model = Instrument
        fields = ["code", "name", "name_en", "market", "sector", "is_listed", "is_etf", "source"]


class InstrumentDetailSerializer(InstrumentSerializer):
    bar_count = serializers.IntegerField(help_text="stored daily bars")
    first_date = serializers.DateField(allow_null=True, help_text="first stored bar")
    last_date = serializers.DateField(allow_null=True, help_text="last stored bar")
    last_close = serializers.IntegerField(allow_null=True, help_text="close of the last stored bar, KRW")
    bar_sources = serializers.DictField(
        child=serializers.IntegerField(), help_text='stored daily bars by source, e.g. {"demo": 2924}'
    )

    class Meta(InstrumentSerializer.Meta):
        fields = [*InstrumentSerializer.Meta.fields, "bar_count", "first_date", "last_date", "last_close",
                  "bar_sources"]


class BarSerializer(serializers.Serializer):
    """One daily bar; only `date` and the requested `fields` are present."""

    date = serializers.DateField()
    open = serializers.IntegerField(required=False)
    high = serializers.IntegerField(required=False)
    low = serializers.IntegerField(required=False)
    close = serializers.IntegerField(required=False)
    volume = serializers.IntegerField(required=False)
    traded_value = serializers.IntegerField(required=False, allow_null=True)
    source = serializers.ChoiceField(choices=BarSource.choices, required=False, help_text="this bar's source")


class BarsSerializer(serializers.Serializer):
    code = serializers.CharField()
    source = serializers.ChoiceField(choices=BarSource.choices, help_text=SOURCE_HELP)
    fields = serializers.ListField(
        child=serializers.CharField(), help_text="the fields present in each bar besides date"
    )
    bars = BarSerializer(many=True)


class QuoteSerializer(serializers.Serializer):
    code = serializers.CharField()
    price = serializers.IntegerField(help_text="current (or last) price, KRW")
    change = serializers.IntegerField(help_text="change from the base price, signed")
    change_sign = serializers.CharField(help_text="1 upper limit, 2 up, 3 flat, 4 lower limit, 5 down")
    change_rate = serializers.DecimalField(max_digits=9, decimal_places=2, help_text="percent")
    open = serializers.IntegerField()
    high = serializers.IntegerField()
    low = serializers.IntegerField()
    volume = serializers.IntegerField()
    traded_value = serializers.IntegerField()
    base_price = serializers.IntegerField(help_text="normally the previous close")
    upper_limit = serializers.IntegerField()
    lower_limit = serializers.IntegerField()
    tick_size = serializers.IntegerField()
    lot_size = serializers.IntegerField()
    status_code = serializers.CharField()
    temporarily_halted = serializers.BooleanField()
    market_warning_code = serializers.CharField()
    vi_code = serializers.CharField()
    market_name = serializers.CharField()
    sector_name = serializers.CharField()
    broker_mode = serializers.ChoiceField(choices=["paper", "simulated", "real"])


class BrokerErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="the broker's message")
    code = serializers.CharField(help_text="the broker's error code, when it gave one")


class OutlierSerializer(serializers.ModelSerializer):
    class Meta:
        model = Outlier
        fields = ["date", "series", "method", "value", "score"]


class WeeklyAnalysisSerializer(serializers.ModelSerializer):
    outliers = OutlierSerializer(many=True, read_only=True)

    class Meta:
        model = WeeklyAnalysis
        fields = [
            "week_start", "iso_week", "trading_days", "close", "weekly_return", "volatility", "skew", "kurtosis",
            "max_drawdown", "z_score", "z_window", "computed_at", "outliers",
        ]


class AnalysisSerializer(serializers.Serializer):
    code = serializers.CharField()
    weeks = WeeklyAnalysisSerializer(many=True, help_text="newest week first")


CODE_PARAM = OpenApiParameter(
    "code", str, OpenApiParameter.PATH, description="KRX short code (6 characters), e.g. 005930"
)
SYMBOL_PARAM = OpenApiParameter(
    "symbol", str, OpenApiParameter.PATH, description="KRX short code (6 characters), e.g. 005930"
)
START_PARAM = OpenApiParameter("start", OpenApiTypes.DATE, description="first date, YYYY-MM-DD (inclusive)")
END_PARAM = OpenApiParameter("end", OpenApiTypes.DATE, description="last date, YYYY-MM-DD (inclusive)")
BAD_REQUEST = OpenApiResponse(ValidationErrorSerializer, description="a bad parameter, with a message")
NOT_FOUND = OpenApiResponse(MarketErrorSerializer, description="unknown instrument code")


class PricesView(APIView):
    """`GET /prices/{symbol}`: the stored daily closes of one instrument, oldest first, and where they
    come from (`source`: demo = synthetic demo prices, csv / kis = real).

    Built for speed: two indexed queries (the instrument, then its bars as `values_list` with the
    dates as text from SQL) and the JSON written directly, no serializer per row."""

    @extend_schema(
        operation_id="prices",
        tags=["market"],
        parameters=[SYMBOL_PARAM, START_PARAM, END_PARAM],
        responses={200: PricesSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, symbol: str):
        start, end = _date_range(request.query_params)
        found = selectors.price_points(symbol, start, end)
        if found is None:
            raise NotFound(_("Unknown symbol: %(symbol)s") % {"symbol": symbol[:12]})
        source, rows = found
        # The JSON is written directly: the dates are ISO text from the database (digits and dashes),
        # the closes integers, so nothing needs escaping; 2-3x faster than json.dumps of dicts.
        body = '{"prices":[' + ",".join([PRICE_POINT % row for row in rows]) + '],"source":' + json.dumps(source) + "}"
        return HttpResponse(body, content_type="application/json")


@extend_schema_view(
    get=extend_schema(
        tags=["market"],
        parameters=[
            OpenApiParameter(
                "q", {"type": "string", "maxLength": MAX_QUERY_LENGTH},
                description="search: code prefix (0059), Korean name (삼성), initial consonants (ㅅㅅㅈㅈ), English "
                            f"name; at most {MAX_QUERY_LENGTH} characters",
            ),
        ],
        responses={200: InstrumentSerializer(many=True), 400: BAD_REQUEST},
    )
)
class InstrumentListView(generics.ListAPIView):
    """Instruments by code, or the best matches of `?q=` first; paginated (`?page=`)."""

    serializer_class = InstrumentSerializer
    queryset = Instrument.objects.order_by("code")

    def list(self, request, *args, **kwargs):
        raw = request.query_params.get("q", "")
        query = raw.strip()
        if len(raw) > MAX_QUERY_LENGTH:  # as the schema's maxLength says: the text as sent
            raise BadRequest(
                _("The search text is too long (at most %(count)d characters).") % {"count": MAX_QUERY_LENGTH}
            )
        if not query:
            return super().list(request, *args, **kwargs)
        page = self.paginate_queryset(selectors.search_instrument_ids(query))
        data = self.get_serializer(selectors.instruments_by_ids(page), many=True).data
        return self.get_paginated_response(data)


class InstrumentDetailView(APIView):
    @extend_schema(
        tags=["market"], parameters=[CODE_PARAM], responses={200: InstrumentDetailSerializer, 404: NOT_FOUND}
    )
    def get(self, request, code: str):
        instrument = _instrument_or_404(code)
        stats = instrument.bars.aggregate(bar_count=Count("id"), first_date=Min("date"), last_date=Max("date"))
        last = instrument.bars.order_by("-date").values_list("close", flat=True).first()
        sources = selectors.bar_sources(instrument.code)
        for name, value in {**stats, "last_close": last, "bar_sources": sources}.items():
            setattr(instrument, name, value)
        return Response(InstrumentDetailSerializer(instrument).data)


class InstrumentBarsView(APIView):
    @extend_schema(
        tags=["market"],
        parameters=[
            CODE_PARAM,
            START_PARAM,
            END_PARAM,
            OpenApiParameter(
                "fields", {"type": "string", "pattern": BAR_FIELDS_PATTERN},
                description=f"comma-separated, from {', '.join(selectors.BAR_FIELDS)}; "
                "default open,high,low,close,volume (date is always included)",
            ),
        ],
        responses={200: BarsSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, code: str):
        start, end = _date_range(request.query_params)
        raw_fields = request.query_params.get("fields")
        try:
            if raw_fields and not re.fullmatch(BAR_FIELDS_PATTERN, raw_fields):
                raise ValueError(raw_fields)
            fields = selectors.parse_bar_fields(raw_fields)
        except ValueError as error:
            raise BadRequest(
                _("Unknown field(s): %(fields)s. Choose from %(allowed)s.")
                % {"fields": str(error)[:100], "allowed": ", ".join(selectors.BAR_FIELDS)}
            ) from None
        instrument = _instrument_or_404(code)
        bars = selectors.bars_for(code, start, end, fields)
        for bar in bars:
            bar["date"] = bar["date"].isoformat()
        return _json({"code": code, "source": instrument.source, "fields": list(fields), "bars": bars})


class InstrumentQuoteView(APIView):
    """The latest quote through the gateway of your default broker account (paper: the last stored bar)."""

    @extend_schema(
        tags=["market"],
        parameters=[CODE_PARAM],
        responses={
            200: QuoteSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(MarketErrorSerializer, description="you have no broker account yet"),
            502: OpenApiResponse(BrokerErrorSerializer, description="the broker refused or failed"),
            504: OpenApiResponse(BrokerErrorSerializer, description="the broker did not answer within "
                                                                    "BROKER_WEB_DEADLINE_SECONDS (code KIS_DEADLINE)"),
        },
    )
    def get(self, request, code: str):
        _instrument_or_404(code)
        account = default_broker_account(request.user)
        if account is None:
            raise NoBrokerAccount(_("Add a broker account to see quotes."))
        try:
            quote = broker_for(account).get_quote(code)
        except KisDeadlineExceeded as error:
            return Response({"detail": error.user_message, "code": error.code}, status=504)
        except (BrokerError, KisError) as error:
            error_code = getattr(error, "msg_cd", "") or getattr(error, "code", "") or ""
            return Response({"detail": user_message_for(error), "code": error_code}, status=502)
        return Response(QuoteSerializer({**asdict(quote), "broker_mode": account.mode}).data)


class InstrumentAnalysisView(APIView):
    @extend_schema(
        tags=["market"],
        parameters=[
            CODE_PARAM,
            OpenApiParameter(
                "weeks", {"type": "integer", "minimum": 1, "maximum": MAX_ANALYSIS_WEEKS, "default": 12},
                description=f"how many of the latest weeks, 1-{MAX_ANALYSIS_WEEKS} (default 12)",
            ),
        ],
        responses={200: AnalysisSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request, code: str):
        raw = request.query_params.get("weeks") or "12"
        try:
            weeks = int(raw)
        except ValueError:
            weeks = 0
        if not 1 <= weeks <= MAX_ANALYSIS_WEEKS:
            raise BadRequest(
                _("weeks must be a whole number from 1 to %(max)d, got %(value)s.")
                % {"max": MAX_ANALYSIS_WEEKS, "value": raw[:12]}
            )
        _instrument_or_404(code)
        rows = selectors.weekly_analysis_for(code, weeks)
        return Response({"code": code, "weeks": WeeklyAnalysisSerializer(rows, many=True).data})
