"""Orders API: the design's `POST /trade/{symbol}`, the caller's orders, fills, derived positions and
trade log, and the kill switch.

JWT or session, like the rest of the API. Everything is scoped to the caller's OWN broker accounts:
another user's order, fill or account answers 404, as if it did not exist. Lists are paginated as
the project does (`?page=`, 50 a page); bad filters answer 400.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, status, viewsets
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import BrokerMode
from accounts.serializers import StepUpRequiredSerializer
from accounts.step_up import SensitiveAction, require_step_up
from trading_site.api import ErrorSerializer, ValidationErrorSerializer

from . import controls, manual, selectors
from .models import Fill, Order, OrderStatus, TradeLog, WeeklyDrift
from .serializers import (
    DriftFilterSerializer,
    FillFilterSerializer,
    FillSerializer,
    OrderDetailSerializer,
    OrderFilterSerializer,
    OrderSerializer,
    PositionSerializer,
    PositionsFilterSerializer,
    TradeLogFilterSerializer,
    TradeLogSerializer,
    TradeRequestSerializer,
    TradeResponseSerializer,
    TradingControlRequestSerializer,
    TradingControlSerializer,
    WeeklyDriftSerializer,
)

TAGS = ["orders"]


def _filters(serializer_class, params) -> dict:
    form = serializer_class(data={key: value for key, value in params.items() if value not in ("", None)})
    form.is_valid(raise_exception=True)
    return dict(form.validated_data)


# ------------------------------------------------------------------------------------------- POST /trade/{symbol}
TRADE_BODY_UNREADABLE = "요청 본문을 읽을 수 없습니다: 올바른 JSON 객체나 폼 데이터를 보내세요."


def trade_message(order) -> str:
    """One line for the caller: what happened to the order (the broker's reason for a refusal)."""
    if order.status == OrderStatus.FILLED:
        return _("Filled: %(quantity)s shares of %(code)s at %(price)s KRW on average.") % {
            "quantity": f"{order.filled_quantity:,}", "code": order.code, "price": f"{order.average_fill_price:,}"}
    if order.status == OrderStatus.PARTIALLY_FILLED:
        return _("Partially filled: %(filled)s of %(quantity)s shares.") % {
            "filled": f"{order.filled_quantity:,}", "quantity": f"{order.quantity:,}"}
    if order.status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
        return _("Order accepted by the broker (order no. %(no)s); fills are checked every 5 minutes.") % {
            "no": order.broker_order_no or "-"}
    if order.status == OrderStatus.PENDING:
        return _("The order is stored and not sent yet.")
    if order.error_message:
        return order.error_message
    if order.status == OrderStatus.UNKNOWN:
        return _("The broker's answer was lost; the order is being checked against the broker's orders.")
    return _("The order was not executed.")


def trade_body(order) -> dict:
    return {
        "trade_id": order.pk, "status": order.status, "client_order_id": order.client_order_id,
        "message": trade_message(order), "code": order.code, "side": order.side, "order_type": order.order_type,
        "quantity": order.quantity, "price": order.price, "trading_date": order.trading_date,
        "account": order.broker_account_id, "filled_quantity": order.filled_quantity,
        "average_fill_price": order.average_fill_price,
    }


class TradeView(APIView):
    """`POST /trade/{symbol}`: place one order by hand (default: BUY 1 share at market)."""

    parser_classes = [parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser]

    @extend_schema(
        tags=["trading"],
        operation_id="trade_create",
        summary="Place a manual order",
        description=(
            "Default BUY 1 share at market on your default broker account. The order is stored before it is "
            "sent and goes through the same checks as the weekly jobs (kill switch, risk limits, KRX rules): "
            "a refused order still answers 201 with `status` `rejected`/`cancelled` and the reason in "
            "`message`. Send an `Idempotency-Key` header to make a retry safe: the same key answers 200 "
            "with the same `trade_id` and sends nothing new; the same key with different parameters "
            "answers 422."
        ),
        parameters=[
            OpenApiParameter("symbol", OpenApiTypes.STR, OpenApiParameter.PATH, description="6-digit code, e.g. 005930"),
            OpenApiParameter("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 200,
                                                 "pattern": "^[!-~]([ -~]*[!-~])?$"},
                             OpenApiParameter.HEADER, required=False,
                             description="any unique string (≤ 200 printable characters) per intended order, e.g. a "
                                         "UUID"),
        ],
        request=TradeRequestSerializer,
        responses={
            201: OpenApiResponse(TradeResponseSerializer, description="the order, after its send"),
            200: OpenApiResponse(TradeResponseSerializer, description="idempotent replay: the existing order"),
            400: OpenApiResponse(ValidationErrorSerializer, description="bad input, e.g. an unknown code or an "
                                                                        "off-tick price; nothing is stored"),
            404: OpenApiResponse(ValidationErrorSerializer, description="the account is not one of yours"),
            409: OpenApiResponse(ValidationErrorSerializer, description="you have no broker account"),
            403: OpenApiResponse(StepUpRequiredSerializer, description="step_up_required: an order on a real-money "
                                 "account needs a second factor used within STEP_UP_SECONDS (POST /api/auth/step-up/)"),
            422: OpenApiResponse(ValidationErrorSerializer, description="Idempotency-Key reused for a different order"),
            504: OpenApiResponse(ErrorSerializer, description="the broker did not answer in time; the order is "
                                                              "stored and checked against the broker's orders"),
        },
    )
    def post(self, request, symbol: str):
        try:
            body = request.data
        except ParseError:  # DRF's own message is English ("JSON parse error - ...")
            return Response({"detail": TRADE_BODY_UNREADABLE}, status=status.HTTP_400_BAD_REQUEST)
        form = TradeRequestSerializer(data=body)
        if not form.is_valid():
            errors = {name: [str(message) for message in messages] for name, messages in form.errors.items()}
            first = next(iter(errors.values()))[0]
            return Response({"detail": first, **errors}, status=status.HTTP_400_BAD_REQUEST)
        data = form.validated_data
        try:
            account = manual.manual_account(request.user, data.get("account"))
            if account.mode == BrokerMode.REAL:  # real money: a second factor within the last minutes
                require_step_up(request, SensitiveAction.REAL_ORDER)
            order = manual.place_manual_order(
                request.user, account, symbol, side=data["side"], quantity=data["quantity"],
                price=data.get("price"), idempotency_key=request.headers.get("Idempotency-Key"),
            )
        except manual.ManualOrderError as error:
            return Response({"detail": error.message, error.field: [error.message]}, status=error.status)
        replay = getattr(order, "idempotent_replay", False)
        return Response(trade_body(order), status=status.HTTP_200_OK if replay else status.HTTP_201_CREATED)


# ------------------------------------------------------------------------------------------- orders, fills, logs
@extend_schema_view(
    list=extend_schema(tags=TAGS, parameters=[OrderFilterSerializer], responses={200: OrderSerializer(many=True)}),
    retrieve=extend_schema(tags=TAGS, responses={200: OrderDetailSerializer}),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your orders, newest first (filters: status, side, code, start/end trading date, reason, account);
    one order with its fills."""

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Order.objects.none()
        if self.action == "retrieve":
            return selectors.orders_for(self.request.user).prefetch_related("fills")
        return selectors.orders_for(self.request.user, **_filters(OrderFilterSerializer, self.request.query_params))

    def get_serializer_class(self):
        return OrderDetailSerializer if self.action == "retrieve" else OrderSerializer


@extend_schema_view(
    list=extend_schema(tags=TAGS, parameters=[FillFilterSerializer], responses={200: FillSerializer(many=True)}),
    retrieve=extend_schema(tags=TAGS, responses={200: FillSerializer}),
)
class FillViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Fills of your orders, newest first (one row per increment of an order's filled quantity)."""

    serializer_class = FillSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Fill.objects.none()
        if self.action == "retrieve":
            return selectors.fills_for(self.request.user)
        return selectors.fills_for(self.request.user, **_filters(FillFilterSerializer, self.request.query_params))


@extend_schema_view(
    list=extend_schema(tags=TAGS, parameters=[TradeLogFilterSerializer],
                       responses={200: TradeLogSerializer(many=True)}),
    retrieve=extend_schema(tags=TAGS, responses={200: TradeLogSerializer}),
)
class TradeLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The design's trade log: one row per executed trade (fill) of yours."""

    serializer_class = TradeLogSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TradeLog.objects.none()
        if self.action == "retrieve":
            return selectors.trade_logs_for(self.request.user)
        return selectors.trade_logs_for(self.request.user,
                                        **_filters(TradeLogFilterSerializer, self.request.query_params))


@extend_schema_view(
    list=extend_schema(tags=TAGS, parameters=[DriftFilterSerializer], responses={200: WeeklyDriftSerializer(many=True)}),
    retrieve=extend_schema(tags=TAGS, responses={200: WeeklyDriftSerializer}),
)
class WeeklyDriftViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Live vs backtest: per strategy config of yours and week, the live orders and fills against the
    backtest of the same config over the same bars — missing and extra trades, quantity differences,
    slippage (KRW and bp) and the realised P&L gap (KRW, bp of the cash invested), newest week first
    (filters: config, week, alert). Computed after each week's exit (`orders.drift`)."""

    serializer_class = WeeklyDriftSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WeeklyDrift.objects.none()
        if self.action == "retrieve":
            return selectors.drifts_for(self.request.user)
        return selectors.drifts_for(self.request.user, **_filters(DriftFilterSerializer, self.request.query_params))


# ------------------------------------------------------------------------------------------- positions
def _position_rows(owner_kind: str, owner, positions) -> list[dict]:
    account = owner if owner_kind == "account" else owner.broker_account
    return [
        {
            "account": account.pk if account else None, "account_name": account.name if account else None,
            "config": owner.pk if owner_kind == "config" else None,
            "config_name": owner.name if owner_kind == "config" else None,
            "code": p.code, "name": p.name, "quantity": p.quantity, "cost": p.cost, "average_price": p.average_price,
            "opened_on": p.opened_on, "last_close": p.last_close, "last_close_date": p.last_close_date,
            "market_value": p.market_value, "unrealised_pnl": p.unrealised_pnl,
            "unrealised_pnl_rate": p.unrealised_pnl_rate,
        }
        for p in positions
    ]


class PositionsView(APIView):
    """`GET /api/positions/`: open positions derived from your fills (manual orders included), per
    broker account (`?by=account`, the default) or per strategy config (`?by=config`), marked to the
    last stored daily close."""

    @extend_schema(
        tags=TAGS, operation_id="positions_list",
        parameters=[PositionsFilterSerializer],
        responses={200: PositionSerializer(many=True),
                   404: OpenApiResponse(ErrorSerializer, description="`account` is not one of yours")},
    )
    def get(self, request):
        filters = _filters(PositionsFilterSerializer, request.query_params)
        by = filters.get("by") or "account"
        account_id = filters.get("account")
        if account_id is not None and selectors.own_account(request.user, account_id) is None:
            raise NotFound()
        groups = (selectors.positions_by_account(request.user) if by == "account"
                  else selectors.positions_by_config(request.user))
        rows = []
        for owner, positions in groups:
            account = owner if by == "account" else owner.broker_account
            if account_id is not None and (account is None or account.pk != account_id):
                continue
            rows.extend(_position_rows(by, owner, positions))
        return Response(PositionSerializer(rows, many=True).data)


# ------------------------------------------------------------------------------------------- kill switch
def control_state(user) -> dict:
    controls = selectors.trading_controls_for(user)

    def row(state):
        return {"account": state.account.pk if state.account else None,
                "account_name": state.account.name if state.account else None,
                "halted": state.halted, "reason": state.reason, "halted_at": state.halted_at}

    return {"can_change_global": bool(user.is_staff), "global": row(controls["global"]),
            "accounts": [row(state) for state in controls["accounts"]]}


class TradingControlView(APIView):
    """`GET/POST /api/trading-control/`: the kill switch. Everyone sees the global switch; only staff
    change it. Each owner halts or resumes their own accounts; a halted scope sends no new order
    (entries, exits and manual orders alike); orders already sent are still reconciled."""

    @extend_schema(tags=TAGS, operation_id="trading_control_retrieve", responses={200: TradingControlSerializer})
    def get(self, request):
        return Response(TradingControlSerializer(control_state(request.user)).data)

    @extend_schema(
        tags=TAGS, operation_id="trading_control_update", request=TradingControlRequestSerializer,
        responses={200: TradingControlSerializer,
                   403: OpenApiResponse(StepUpRequiredSerializer,
                                        description="the global switch is staff only (a `detail` only); or "
                                                    "step_up_required: lifting a kill switch needs a second factor "
                                                    "used within STEP_UP_SECONDS (POST /api/auth/step-up/)"),
                   404: OpenApiResponse(ErrorSerializer, description="not one of your accounts")},
    )
    def post(self, request):
        form = TradingControlRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        account = None
        if data.get("account") is not None:
            account = selectors.own_account(request.user, data["account"])
            if account is None:
                raise NotFound()
        elif not request.user.is_staff:
            raise PermissionDenied(_("Only staff can switch the global kill switch."))
        if data["action"] == "halt":
            controls.halt_trading(account=account, user=request.user, reason=data.get("reason", ""))
        else:
            require_step_up(request, SensitiveAction.LIFT_KILL_SWITCH)
            controls.resume_trading(account=account, user=request.user)
        return Response(TradingControlSerializer(control_state(request.user)).data)
