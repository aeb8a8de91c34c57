"""Strategies API: the strategy registry, the user's strategy configs, backtest runs, sweeps.

Everything is scoped to the requesting user: another user's config or run answers 404. Parameters
are validated by the strategy's own declarations; a bad one answers 400 with one Korean message per
parameter: ``{"params": {"window": ["'기간'(window) 값은 2 이상 250 이하이어야 합니다 (입력값: 1)"]}}``.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import BrokerAccount
from accounts.selectors import broker_accounts_for
from strategies.library import all_strategies, get_strategy
from strategies.library.base import ParameterError
from trading_site.api import Conflict, ErrorSerializer, JsonTypesMixin, ValidationErrorSerializer

from . import selectors, validators
from .models import BacktestRun, BacktestSweep, StrategyConfig, UniverseMode
from .services import BacktestInputError, ConfigInUse, check_period, create_backtest_run, delete_config, universe_for
from .sweeps import create_sweep
from .tasks import start_backtest, start_sweep

DEFAULT_STRATEGY = "mean_reversion"


def _strategy_class(key: str):
    try:
        return get_strategy(key)
    except KeyError as error:
        raise serializers.ValidationError({"strategy_key": [str(error)]}) from None


def _validated_params(strategy_class, params) -> dict:
    if not isinstance(params, dict):
        raise serializers.ValidationError({"params": [_("Parameters must be an object of name: value.")]})
    try:
        return strategy_class.validate_params(params)
    except ParameterError as error:
        raise serializers.ValidationError({"params": {name: [message] for name, message in error.errors.items()}}) from None


class StrategyKeyField(serializers.ChoiceField):
    """A key of GET /api/strategies/ (an enum in the schema); an unknown key gets the registry's
    Korean message, which lists the known ones."""

    def __init__(self, **kwargs):
        super().__init__(choices=sorted(all_strategies()), **kwargs)

    def to_internal_value(self, data):
        key = str(data)
        if key not in self.choices:
            try:
                get_strategy(key)
            except KeyError as error:
                raise serializers.ValidationError(str(error)) from None
        return key


# --------------------------------------------------------------------------------------- registry


class ParameterSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["int", "float", "choice"])
    default = serializers.JSONField()
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    label = serializers.CharField(help_text="Korean label")
    help = serializers.CharField(help_text="Korean help text")
    label_en = serializers.CharField(help_text="English label ('' if the strategy declares none)")
    help_en = serializers.CharField(help_text="English help text ('' if the strategy declares none)")
    choices = serializers.ListField(child=serializers.CharField())
    step = serializers.FloatField(allow_null=True, help_text="UI hint")


class StrategySerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField(help_text="Korean name")
    description = serializers.CharField(help_text="Korean description")
    name_en = serializers.CharField(help_text="English name ('' if the strategy declares none)")
    description_en = serializers.CharField(help_text="English description ('' if the strategy declares none)")
    needs_ohlc = serializers.BooleanField()
    cross_sectional = serializers.BooleanField()
    parameters = ParameterSpecSerializer(many=True)


class StrategyListView(APIView):
    """`GET /api/strategies/`: every registered strategy with its declared parameters."""

    @extend_schema(tags=["strategies"], operation_id="strategies_list", responses={200: StrategySerializer(many=True)})
    def get(self, request):
        return Response([cls.describe() for cls in all_strategies().values()])


# --------------------------------------------------------------------------------- strategy configs


class StrategyConfigSerializer(JsonTypesMixin, serializers.ModelSerializer):
    strategy_key = StrategyKeyField(help_text="a key from GET /api/strategies/")
    params = serializers.DictField(
        required=False, help_text="parameter name → value; missing parameters take their defaults"
    )
    broker_account = serializers.PrimaryKeyRelatedField(
        queryset=BrokerAccount.objects.none(), required=False, allow_null=True, help_text="one of your broker accounts"
    )

    class Meta:
        model = StrategyConfig
        fields = [
            "id", "name", "strategy_key", "params", "universe_mode", "universe_codes", "universe_top_n",
            "max_positions", "cash_per_week", "drift_alert_bps", "is_active", "broker_account", "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated and "broker_account" in self.fields:
            self.fields["broker_account"].queryset = broker_accounts_for(request.user).filter(owner=request.user)

    def validate(self, attrs):
        instance = self.instance
        key = attrs.get("strategy_key", instance.strategy_key if instance else None)
        strategy_class = _strategy_class(key)
        if "params" in attrs:
            params = attrs["params"]
        else:
            params = instance.params if instance is not None and instance.strategy_key == key else {}
        attrs["params"] = _validated_params(strategy_class, params)
        # The model's rule for the universe (StrategyConfig.clean(); counts and amounts are the model
        # fields' validators, which this serializer's fields carry).
        mode = attrs.get("universe_mode", instance.universe_mode if instance else UniverseMode.TOP_TRADED)
        codes = attrs.get("universe_codes", instance.universe_codes if instance else "")
        try:
            attrs["universe_codes"] = validators.clean_universe_codes(codes, required=mode == UniverseMode.CODES)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"universe_codes": error.messages}) from None
        name = attrs.get("name", instance.name if instance else None)
        request = self.context["request"]
        taken = selectors.configs_for(request.user).filter(name=name)
        if instance is not None:
            taken = taken.exclude(pk=instance.pk)
        if taken.exists():
            raise serializers.ValidationError({"name": [_("You already have a strategy with this name.")]})
        return attrs


@extend_schema_view(
    list=extend_schema(tags=["strategies"]),
    retrieve=extend_schema(tags=["strategies"]),
    create=extend_schema(tags=["strategies"]),
    update=extend_schema(tags=["strategies"]),
    partial_update=extend_schema(tags=["strategies"]),
    destroy=extend_schema(tags=["strategies"], responses={
        204: None,
        409: OpenApiResponse(ErrorSerializer, description="the config has orders on record: it is kept; deactivate "
                                                          "it (`is_active` false) to stop its trading"),
    }),
)
class StrategyConfigViewSet(viewsets.ModelViewSet):
    """Your strategy configurations. Other users' configs answer 404, as if they did not exist."""

    serializer_class = StrategyConfigSerializer

    def get_queryset(self):
        return selectors.configs_for(self.request.user)

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)

    def perform_destroy(self, instance):
        try:
            delete_config(instance)
        except ConfigInUse as error:
            raise Conflict(error.message) from error


# ------------------------------------------------------------------------------------------- backtests


class BacktestRunSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = BacktestRun
        fields = [
            "id", "status", "progress", "error", "strategy_key", "params", "codes", "start", "end", "initial_cash",
            "max_positions", "cash_per_week", "commission", "tax", "slippage_ticks", "participation_cap",
            "spread_ticks", "small_cap_value", "universe_top_n", "config", "sweep", "metrics", "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class TradeSerializer(serializers.Serializer):
    code = serializers.CharField()
    market = serializers.CharField()
    entry_date = serializers.DateField()
    entry_price = serializers.IntegerField()
    exit_date = serializers.DateField()
    exit_price = serializers.IntegerField()
    shares = serializers.IntegerField()
    fees = serializers.IntegerField(help_text="commission, both sides, KRW")
    tax = serializers.IntegerField(help_text="securities-transaction tax on the sell, KRW")
    reason = serializers.ChoiceField(choices=["stop_loss", "take_profit", "signal", "week_end"])
    pnl = serializers.IntegerField(help_text="profit after costs, KRW")


# `return` is a Python keyword, so the field is added to the declared fields by hand.
TradeSerializer._declared_fields["return"] = serializers.FloatField(help_text="pnl / cost")


class BacktestRunSerializer(BacktestRunSummarySerializer):
    trades = TradeSerializer(many=True, read_only=True, allow_null=True)
    equity = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        read_only=True, allow_null=True, help_text="[date, equity in KRW] per trading day",
    )

    class Meta(BacktestRunSummarySerializer.Meta):
        fields = [*BacktestRunSummarySerializer.Meta.fields, "benchmark", "trades", "equity"]
        read_only_fields = fields


class CostOptionsSerializer(serializers.Serializer):
    """The costs and the universe rule a backtest, a sweep and a walk-forward share (besides
    commission, tax and slippage)."""

    participation_cap = serializers.DecimalField(
        max_digits=6, decimal_places=4, min_value=Decimal("0.0001"), max_value=Decimal(1), required=False,
        allow_null=True, help_text="a buy takes at most this fraction of the entry day's volume (0.05 = 5%); null: no cap",
    )
    spread_ticks = serializers.IntegerField(
        min_value=0, max_value=validators.MAX_SPREAD_TICKS, default=0,
        help_text="extra ticks paid on each buy and sell of a small cap",
    )
    small_cap_value = serializers.IntegerField(
        min_value=0, max_value=validators.MAX_CASH_KRW, default=1_000_000_000,
        help_text="KRW: average daily traded value over the previous 20 days below which a stock is a small cap",
    )
    universe_top_n = serializers.IntegerField(
        min_value=1, max_value=validators.MAX_UNIVERSE_CODES, required=False, allow_null=True,
        help_text="the universe as it was: only the N codes with the largest traded value over the previous 60 days "
                  "are bought each week (delisted ones included while they traded); null: all the codes",
    )


class BacktestCreateSerializer(JsonTypesMixin, CostOptionsSerializer):
    strategy_key = StrategyKeyField(required=False, help_text="default: the config's strategy, else mean_reversion")
    params = serializers.DictField(
        required=False, help_text="default: the config's parameters (same strategy), else the strategy's defaults"
    )
    codes = serializers.ListField(
        child=serializers.CharField(max_length=12), required=False, max_length=validators.MAX_UNIVERSE_CODES,
        help_text="6-digit codes; or leave out and give `config` to use its universe",
    )
    config = serializers.PrimaryKeyRelatedField(
        queryset=StrategyConfig.objects.none(), required=False, allow_null=True,
        help_text="one of your strategy configs: backtest it with all of its settings (strategy, parameters, "
                  "universe when `codes` is empty, max positions, cash per week); fields given here override them",
    )
    start = serializers.DateField(help_text="within the stored bars of the codes")
    end = serializers.DateField(help_text="within the stored bars of the codes")
    initial_cash = serializers.IntegerField(
        min_value=validators.MIN_INITIAL_CASH_KRW, max_value=validators.MAX_CASH_KRW, default=10_000_000
    )
    max_positions = serializers.IntegerField(
        min_value=1, max_value=validators.MAX_POSITIONS, required=False, help_text="default: the config's, else 10"
    )
    cash_per_week = serializers.IntegerField(
        min_value=0, max_value=validators.MAX_CASH_KRW, required=False, allow_null=True,
        help_text="caps each week's buys like the live config (KRW); default: the config's, else null = all the cash",
    )
    commission = serializers.DecimalField(
        max_digits=10, decimal_places=8, min_value=0, max_value=Decimal("0.05"), required=False, allow_null=True,
        help_text="overrides the KRX fee table for the run",
    )
    tax = serializers.DecimalField(
        max_digits=10, decimal_places=8, min_value=0, max_value=Decimal("0.05"), required=False, allow_null=True,
        help_text="overrides the dated tax table for the run",
    )
    slippage_ticks = serializers.IntegerField(min_value=0, max_value=validators.MAX_SLIPPAGE_TICKS, default=0)
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["config"].queryset = selectors.configs_for(request.user)

    def validate(self, attrs):
        config = attrs.get("config")
        # "Backtest this config": every setting of the config unless given here.
        key = attrs.get("strategy_key") or (config.strategy_key if config is not None else DEFAULT_STRATEGY)
        attrs["strategy_key"] = key
        strategy_class = _strategy_class(key)
        if "params" in attrs:
            params = attrs["params"]
        else:
            params = dict(config.params) if config is not None and config.strategy_key == key else {}
        attrs["params"] = _validated_params(strategy_class, params)
        if "max_positions" not in attrs:
            attrs["max_positions"] = config.max_positions if config is not None else 10
        if "cash_per_week" not in attrs:
            attrs["cash_per_week"] = int(config.cash_per_week) if config is not None else None
        start, end = attrs["start"], attrs["end"]
        if start >= end:
            raise serializers.ValidationError({"end": [_("The end must be after the start.")]})
        try:
            codes = validators.clean_codes(attrs.get("codes") or [])
        except DjangoValidationError as error:
            raise serializers.ValidationError({"codes": error.messages}) from None
        if codes:
            self._check_period(codes, start, end)
        elif config is not None:
            # A top-N universe is chosen on the end date: the period is checked against every stored bar.
            self._check_period(config.code_list if config.universe_mode == UniverseMode.CODES else None, start, end)
            codes = universe_for(config, end)
            if not codes:
                raise serializers.ValidationError(
                    {"config": [_("This strategy's universe has no stocks with bars in the period.")]}
                )
        else:
            raise serializers.ValidationError({"codes": [_("List at least one code, or choose a strategy's universe.")]})
        attrs["codes"] = codes
        return attrs

    @staticmethod
    def _check_period(codes, start, end) -> None:
        try:
            check_period(codes, start, end)
        except BacktestInputError as error:
            raise serializers.ValidationError({error.field or "detail": [str(error)]}) from None


@extend_schema_view(
    list=extend_schema(tags=["backtests"], responses={200: BacktestRunSummarySerializer(many=True)}),
    retrieve=extend_schema(tags=["backtests"], responses={200: BacktestRunSerializer, 404: ErrorSerializer}),
)
class BacktestRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your backtest runs: status and progress while they run; metrics, trades and equity when done."""

    def get_queryset(self):
        queryset = selectors.runs_for(self.request.user)
        return queryset.defer("trades", "equity", "benchmark") if self.action == "list" else queryset

    def get_serializer_class(self):
        if self.action == "list":
            return BacktestRunSummarySerializer
        if self.action == "create":
            return BacktestCreateSerializer
        return BacktestRunSerializer

    @extend_schema(
        tags=["backtests"],
        request=BacktestCreateSerializer,
        responses={
            201: OpenApiResponse(BacktestRunSerializer, description="the run, handed to the workers"),
            400: OpenApiResponse(ValidationErrorSerializer,
                                 description="per-field messages, e.g. {\"params\": {\"window\": [\"...\"]}}"),
        },
    )
    def create(self, request):
        """Create a backtest run and start it on the workers; poll `GET /api/backtests/{id}/` for its progress."""
        form = BacktestCreateSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        try:
            run = create_backtest_run(request.user, **data)
        except ParameterError as error:
            raise serializers.ValidationError({"params": {k: [v] for k, v in error.errors.items()}}) from None
        except BacktestInputError as error:
            raise serializers.ValidationError({error.field or "detail": [str(error)]}) from None
        start_backtest(run)
        run.refresh_from_db()
        return Response(
            BacktestRunSerializer(run).data, status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api:backtest-detail", args=[run.pk])},
        )


# --------------------------------------------------------------------------------------------- sweeps


class SweepSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = BacktestSweep
        fields = ["id", "status", "progress", "error", "strategy_key", "grid", "settings", "seconds", "created_at",
                  "finished_at"]
        read_only_fields = fields


class SweepSerializer(SweepSummarySerializer):
    results = serializers.ListField(
        child=serializers.DictField(), read_only=True, allow_null=True,
        help_text="per combination, in grid order (itertools.product over the grid's names, sorted): "
                  "{\"params\": {...}, \"metrics\": {total_return, cagr, sharpe, max_drawdown, win_rate, n_trades, ...}}",
    )
    statistics = serializers.DictField(
        read_only=True, allow_null=True,
        help_text="skill or luck: deflated_sharpe (dsr, sharpe, expected_max_sharpe, ...), pbo (pbo, n_splits, "
                  "probability_of_loss, ...), likely_luck, explanation (Korean sentences), notes, best_index",
    )

    class Meta(SweepSummarySerializer.Meta):
        fields = [*SweepSummarySerializer.Meta.fields, "results", "statistics"]
        read_only_fields = fields


class SweepCreateSerializer(BacktestCreateSerializer):
    grid = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=1),
        help_text="values to try per parameter, e.g. {\"window\": [10, 20, 30], \"z_threshold\": [1.5, 2.0]}; "
                  "every combination is backtested (at most 5,000)",
    )
    params = serializers.DictField(required=False, help_text="the other parameters (default: the strategy's defaults)")


class HeatmapQuerySerializer(serializers.Serializer):
    x = serializers.CharField(required=False, help_text="a swept parameter (columns)")
    y = serializers.CharField(required=False, help_text="another swept parameter (rows)")
    metric = serializers.ChoiceField(choices=[m[0] for m in selectors.HEATMAP_METRICS], required=False,
                                     default="total_return")


@extend_schema_view(
    list=extend_schema(tags=["sweeps"], responses={200: SweepSummarySerializer(many=True)}),
    retrieve=extend_schema(tags=["sweeps"], responses={200: SweepSerializer, 404: ErrorSerializer}),
)
class SweepViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your parameter sweeps: progress while they run; each combination's metrics and the sweep's
    deflated Sharpe ratio and probability of backtest overfitting when done."""

    def get_queryset(self):
        queryset = selectors.sweeps_for(self.request.user)
        return queryset.defer("results", "statistics") if self.action == "list" else queryset

    def get_serializer_class(self):
        if self.action == "list":
            return SweepSummarySerializer
        if self.action == "create":
            return SweepCreateSerializer
        return SweepSerializer

    @extend_schema(
        tags=["sweeps"],
        request=SweepCreateSerializer,
        responses={
            201: OpenApiResponse(SweepSerializer, description="the sweep, handed to a worker"),
            400: OpenApiResponse(ValidationErrorSerializer, description="per-field messages, e.g. {\"grid\": [\"...\"]}"),
        },
    )
    def create(self, request):
        """Create a sweep and start it on a worker; poll `GET /api/sweeps/{id}/` for its progress."""
        form = SweepCreateSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        data.pop("config", None)
        base_params = data.pop("params", None) or {}
        try:
            sweep = create_sweep(request.user, base_params=base_params, **data)
        except BacktestInputError as error:
            raise serializers.ValidationError({error.field or "detail": [str(error)]}) from None
        start_sweep(sweep)
        sweep.refresh_from_db()
        return Response(
            SweepSerializer(sweep).data, status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api:sweep-detail", args=[sweep.pk])},
        )

    @extend_schema(
        tags=["sweeps"], parameters=[HeatmapQuerySerializer],
        responses={200: OpenApiResponse(description="{x, y, metric, columns, rows: [{value, cells: [{value, text}]}], "
                                                    "fixed}; null with fewer than two swept parameters")},
    )
    @action(detail=True, methods=["get"])
    def heatmap(self, request, pk=None):
        """Any two swept parameters as a grid of one metric; the others held at the best set's values."""
        query = HeatmapQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        sweep = self.get_object()
        heatmap = selectors.sweep_heatmap(sweep, **query.validated_data)
        if heatmap is None:
            return Response(None)
        return Response({
            "x": heatmap["x"], "y": heatmap["y"], "metric": heatmap["metric"], "columns": heatmap["columns"],
            "rows": [{"value": row["value"], "cells": [{"value": c["value"], "text": c["text"], "index": c["index"]}
                                                       for c in row["cells"]]} for row in heatmap["rows"]],
            "fixed": [{"parameter": label, "value": value} for label, value in heatmap["fixed"]],
        })
