"""Walk-forward API: `POST /api/walk-forward/` records a run and starts it on the workers; `GET` lists
your runs and shows one (status and progress while it runs; windows, stitched curve and summary when
done). Another user's run answers 404. Validation is the service's (`strategies.walk_forward`)."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from strategies.library.base import ParameterError
from trading_site.api import ErrorSerializer, JsonTypesMixin, ValidationErrorSerializer

from . import validators
from .api import DEFAULT_STRATEGY, CostOptionsSerializer, StrategyKeyField
from .market_data import BacktestInputError
from .models import WalkForwardObjective, WalkForwardRun
from .tasks import start_walk_forward
from .walk_forward import MAX_SETS, MAX_WINDOW_WEEKS, create_walk_forward, walk_forwards_for


class WalkForwardWindowSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    in_sample_start = serializers.DateField()
    in_sample_end = serializers.DateField()
    out_of_sample_start = serializers.DateField()
    out_of_sample_end = serializers.DateField()
    in_sample_weeks = serializers.IntegerField()
    out_of_sample_weeks = serializers.IntegerField()
    set_index = serializers.IntegerField(help_text="the chosen set's index in the grid's order")
    params = serializers.DictField(help_text="the chosen values of the grid's parameters")
    in_sample_objective = serializers.FloatField(allow_null=True, help_text="null: undefined (e.g. no variance)")
    out_of_sample_objective = serializers.FloatField(allow_null=True)
    in_sample_return = serializers.FloatField(allow_null=True)
    out_of_sample_return = serializers.FloatField(allow_null=True)
    in_sample_cagr = serializers.FloatField(allow_null=True)
    out_of_sample_cagr = serializers.FloatField(allow_null=True)


class WalkForwardSummarySerializer(serializers.Serializer):
    windows = serializers.IntegerField()
    start = serializers.DateField(help_text="the first out-of-sample day")
    end = serializers.DateField()
    days = serializers.IntegerField()
    final = serializers.FloatField(help_text="the stitched curve's last value, KRW")
    total_return = serializers.FloatField(allow_null=True)
    cagr = serializers.FloatField(allow_null=True)
    sharpe = serializers.FloatField(allow_null=True)
    max_drawdown = serializers.FloatField(allow_null=True)
    mean_in_sample_objective = serializers.FloatField(allow_null=True)
    mean_out_of_sample_objective = serializers.FloatField(allow_null=True)
    gap = serializers.FloatField(allow_null=True, help_text="mean in-sample − mean out-of-sample objective")
    mean_in_sample_cagr = serializers.FloatField(allow_null=True)
    efficiency = serializers.FloatField(
        allow_null=True, help_text="walk-forward efficiency: out-of-sample CAGR / mean in-sample CAGR"
    )
    choice_changes = serializers.IntegerField(help_text="windows whose chosen set differs from the previous one's")
    choice_change_rate = serializers.FloatField(allow_null=True)
    distinct_sets = serializers.IntegerField()


class WalkForwardResultSerializer(serializers.Serializer):
    objective = serializers.ChoiceField(choices=WalkForwardObjective.choices)
    in_sample_weeks = serializers.IntegerField()
    out_of_sample_weeks = serializers.IntegerField()
    anchored = serializers.BooleanField()
    names = serializers.ListField(child=serializers.CharField(), help_text="the grid's parameter names")
    initial_cash = serializers.IntegerField()
    sets = serializers.IntegerField(help_text="how many sets of parameters the grid has")
    seconds = serializers.FloatField(help_text="the sweep's time")
    windows = WalkForwardWindowSerializer(many=True)
    equity = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        help_text="[date, stitched out-of-sample equity in KRW] per out-of-sample day",
    )
    summary = WalkForwardSummarySerializer()


class WalkForwardRunSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = WalkForwardRun
        fields = [
            "id", "status", "progress", "error", "strategy_key", "grid", "settings", "in_sample_weeks",
            "out_of_sample_weeks", "anchored", "objective", "created_at", "finished_at",
        ]
        read_only_fields = fields


class WalkForwardRunSerializer(WalkForwardRunSummarySerializer):
    result = WalkForwardResultSerializer(read_only=True, allow_null=True)

    class Meta(WalkForwardRunSummarySerializer.Meta):
        fields = [*WalkForwardRunSummarySerializer.Meta.fields, "result"]
        read_only_fields = fields


class WalkForwardCreateSerializer(JsonTypesMixin, CostOptionsSerializer):
    strategy_key = StrategyKeyField(default=DEFAULT_STRATEGY, help_text="a key from GET /api/strategies/")
    grid = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=1, max_length=MAX_SETS),
        help_text='parameter name → the values to try, e.g. {"window": [10, 20, 30], "z_threshold": [1.5, 2.0]}',
    )
    base_params = serializers.DictField(
        required=False, default=dict, help_text="values of the parameters not in the grid (default: the strategy's)"
    )
    in_sample_weeks = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW_WEEKS, default=104)
    out_of_sample_weeks = serializers.IntegerField(min_value=1, max_value=MAX_WINDOW_WEEKS, default=26)
    anchored = serializers.BooleanField(
        default=False, help_text="in-sample windows all start at the first week (they grow) instead of rolling"
    )
    objective = serializers.ChoiceField(
        choices=WalkForwardObjective.choices, default=WalkForwardObjective.SHARPE,
        help_text="what is maximised in each in-sample window",
    )
    codes = serializers.ListField(
        child=serializers.CharField(max_length=12), min_length=1, max_length=validators.MAX_UNIVERSE_CODES,
        help_text="6-digit codes",
    )
    start = serializers.DateField(help_text="within the stored bars of the codes")
    end = serializers.DateField(help_text="within the stored bars of the codes")
    initial_cash = serializers.IntegerField(
        min_value=validators.MIN_INITIAL_CASH_KRW, max_value=validators.MAX_CASH_KRW, default=10_000_000
    )
    max_positions = serializers.IntegerField(min_value=1, max_value=validators.MAX_POSITIONS, default=10)
    cash_per_week = serializers.IntegerField(
        min_value=0, max_value=validators.MAX_CASH_KRW, required=False, allow_null=True, default=None,
        help_text="caps each week's buys like the live config (KRW); null = all the cash",
    )
    commission = serializers.DecimalField(
        max_digits=10, decimal_places=8, min_value=0, max_value=Decimal("0.05"), required=False, allow_null=True,
        default=None, help_text="overrides the KRX fee table",
    )
    tax = serializers.DecimalField(
        max_digits=10, decimal_places=8, min_value=0, max_value=Decimal("0.05"), required=False, allow_null=True,
        default=None, help_text="overrides the dated tax table",
    )
    slippage_ticks = serializers.IntegerField(min_value=0, max_value=validators.MAX_SLIPPAGE_TICKS, default=0)

    def validate_codes(self, value):
        try:
            return validators.clean_codes(value, required=True)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None


@extend_schema_view(
    list=extend_schema(tags=["backtests"], responses={200: WalkForwardRunSummarySerializer(many=True)}),
    retrieve=extend_schema(tags=["backtests"], responses={200: WalkForwardRunSerializer, 404: ErrorSerializer}),
)
class WalkForwardViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your walk-forward analyses: status and progress while they run; windows, the chosen parameters,
    the in-/out-of-sample figures and the stitched out-of-sample equity when done."""

    def get_queryset(self):
        queryset = walk_forwards_for(self.request.user)
        return queryset.defer("result") if self.action == "list" else queryset

    def get_serializer_class(self):
        if self.action == "list":
            return WalkForwardRunSummarySerializer
        if self.action == "create":
            return WalkForwardCreateSerializer
        return WalkForwardRunSerializer

    @extend_schema(
        tags=["backtests"],
        request=WalkForwardCreateSerializer,
        responses={
            201: OpenApiResponse(WalkForwardRunSerializer, description="the run, handed to the workers"),
            400: OpenApiResponse(ValidationErrorSerializer,
                                 description="per-field messages in Korean, e.g. {\"grid\": {\"window\": [\"...\"]}}"),
        },
    )
    def create(self, request):
        """Record a walk-forward analysis and start it; poll `GET /api/walk-forward/{id}/` for its progress."""
        form = WalkForwardCreateSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        try:
            run = create_walk_forward(request.user, **form.validated_data)
        except ParameterError as error:
            raise serializers.ValidationError({"grid": {k: [v] for k, v in error.errors.items()}}) from None
        except BacktestInputError as error:
            raise serializers.ValidationError({error.field or "detail": [str(error)]}) from None
        start_walk_forward(run)
        run.refresh_from_db()
        return Response(
            WalkForwardRunSerializer(run).data, status=status.HTTP_201_CREATED,
            headers={"Location": reverse("api:walk-forward-detail", args=[run.pk])},
        )
