"""Serializers of the orders API: orders with their fills, derived positions, the trade log, the kill
switch and the design's `POST /trade/{symbol}`. Read-only shapes; money is integer KRW."""

from __future__ import annotations

import re

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from trading_site.api import MAX_ID, ErrorSerializer, JsonTypesMixin

from .models import Fill, Order, OrderReason, OrderSide, OrderStatus, TradeLog, WeeklyDrift


# `status` and `reason` are also field names of the backtest API with other choices; these fields get
# their own named enum components (OrderStatusEnum, OrderReasonEnum), so the schema stays warning-free.
class OrderStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=OrderStatus.choices, **kwargs)


class OrderReasonField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(choices=OrderReason.choices, **kwargs)


class _NamedEnum(OpenApiSerializerFieldExtension):
    enum_name = ""
    values: tuple = ()

    def get_name(self):
        return self.enum_name

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "enum": list(self.values)}


class OrderStatusEnum(_NamedEnum):
    target_class = OrderStatusField
    enum_name = "OrderStatusEnum"
    values = tuple(OrderStatus.values)


class OrderReasonEnum(_NamedEnum):
    target_class = OrderReasonField
    enum_name = "OrderReasonEnum"
    values = tuple(OrderReason.values)


class FillSerializer(serializers.ModelSerializer):
    order = serializers.IntegerField(source="order_id", read_only=True)
    code = serializers.CharField(source="order.code", read_only=True)
    side = serializers.ChoiceField(source="order.side", choices=OrderSide.choices, read_only=True)

    class Meta:
        model = Fill
        fields = ["id", "order", "code", "side", "cumulative_quantity", "quantity", "price", "amount", "commission",
                  "tax", "filled_at"]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    account = serializers.IntegerField(source="broker_account_id", read_only=True)
    account_name = serializers.CharField(source="broker_account.name", read_only=True)
    config = serializers.IntegerField(source="config_id", read_only=True, allow_null=True)
    config_name = serializers.SerializerMethodField()
    message = serializers.CharField(source="error_message", read_only=True,
                                    help_text="the broker's or the auto-trader's message (why a rejection)")
    status = OrderStatusField(read_only=True)
    reason = OrderReasonField(read_only=True, help_text="entry, the exits, or manual")

    class Meta:
        model = Order
        fields = [
            "id", "client_order_id", "account", "account_name", "config", "config_name", "trading_date", "code",
            "side", "order_type", "quantity", "price", "reference_price", "status", "reason", "broker_order_no",
            "filled_quantity", "filled_amount", "average_fill_price", "message", "send_attempts", "intent_at",
            "sent_at", "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_config_name(self, order) -> str | None:
        return order.config.name if order.config_id else None


class OrderDetailSerializer(OrderSerializer):
    fills = FillSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "fills"]
        read_only_fields = fields


class OrderFilterSerializer(serializers.Serializer):
    """Query parameters of `GET /api/orders/` (all optional)."""

    status = OrderStatusField(required=False)
    side = serializers.ChoiceField(choices=OrderSide.choices, required=False)
    code = serializers.CharField(max_length=12, required=False)
    start = serializers.DateField(required=False, help_text="first trading date, YYYY-MM-DD")
    end = serializers.DateField(required=False, help_text="last trading date, YYYY-MM-DD")
    reason = OrderReasonField(required=False)
    account = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False,
                                       help_text="one of your broker account ids")

    def validate(self, attrs):
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"end": ["end must not be before start."]})
        return attrs


class FillFilterSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=12, required=False)
    side = serializers.ChoiceField(choices=OrderSide.choices, required=False)
    start = serializers.DateField(required=False, help_text="first fill date (Seoul), YYYY-MM-DD")
    end = serializers.DateField(required=False, help_text="last fill date (Seoul), YYYY-MM-DD")
    order = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, help_text="one order's fills")


class TradeLogFilterSerializer(serializers.Serializer):
    symbol = serializers.CharField(max_length=12, required=False)
    side = serializers.ChoiceField(choices=OrderSide.choices, required=False)
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)
    reason = OrderReasonField(required=False)


class PositionsFilterSerializer(serializers.Serializer):
    """Query parameters of `GET /api/positions/` (all optional)."""

    by = serializers.ChoiceField(
        choices=[("account", "account"), ("config", "config")], required=False,
        help_text="group by broker account (default) or by strategy config",
        error_messages={"invalid_choice": "by는 account(계좌별) 또는 config(전략별)이어야 합니다."},
    )
    account = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False,
                                       help_text="only this broker account of yours")


class TradeLogSerializer(serializers.ModelSerializer):
    fill = serializers.IntegerField(source="fill_id", read_only=True)
    reason = OrderReasonField(read_only=True)

    class Meta:
        model = TradeLog
        fields = ["id", "fill", "symbol", "side", "quantity", "price", "amount", "commission", "tax", "reason",
                  "timestamp"]
        read_only_fields = fields


class PositionSerializer(serializers.Serializer):
    """A position derived from fills, marked to the last stored daily close (fees and tax left out)."""

    account = serializers.IntegerField(allow_null=True)
    account_name = serializers.CharField(allow_null=True)
    config = serializers.IntegerField(allow_null=True, help_text="set when grouped by strategy config")
    config_name = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    name = serializers.CharField()
    quantity = serializers.IntegerField()
    cost = serializers.IntegerField(help_text="KRW paid for the shares held, commission excluded")
    average_price = serializers.FloatField()
    opened_on = serializers.DateField(allow_null=True)
    last_close = serializers.IntegerField(allow_null=True, help_text="last stored daily close, KRW")
    last_close_date = serializers.DateField(allow_null=True)
    market_value = serializers.IntegerField(allow_null=True)
    unrealised_pnl = serializers.IntegerField(allow_null=True, help_text="market value − cost, KRW")
    unrealised_pnl_rate = serializers.FloatField(allow_null=True, help_text="unrealised P&L / cost")


# ------------------------------------------------------------------------------------------- kill switch
class ControlStateSerializer(serializers.Serializer):
    account = serializers.IntegerField(allow_null=True, help_text="null: the global switch")
    account_name = serializers.CharField(allow_null=True)
    halted = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)
    halted_at = serializers.DateTimeField(allow_null=True)


class TradingControlSerializer(serializers.Serializer):
    can_change_global = serializers.BooleanField(help_text="true for staff: only staff switch the global halt")
    accounts = ControlStateSerializer(many=True, help_text="one switch per broker account you own")


# `global` is a Python keyword, so the field is added to the declared fields by hand.
TradingControlSerializer._declared_fields["global"] = ControlStateSerializer(
    help_text="the site-wide switch: when halted, no account sends any new order")


class TradingControlRequestSerializer(JsonTypesMixin, serializers.Serializer):
    action = serializers.ChoiceField(
        choices=[("halt", "halt"), ("resume", "resume")],
        error_messages={"invalid_choice": "action은 halt(정지) 또는 resume(재개)이어야 합니다.",
                        "required": "action(halt 또는 resume)을 지정하세요."},
    )
    account = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID,
        help_text="one of your broker account ids; leave out for the global switch (staff only)",
        error_messages={"invalid": "account는 계좌 id(정수)여야 합니다."},
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


# ------------------------------------------------------------------------------------------- POST /trade/{symbol}
class WholeNumberField(serializers.IntegerField):
    """A whole number as a JSON integer or, from a form post, a string of digits. DRF's IntegerField
    also reads `1.0`, `"1.0"` and `"1.00"` as 1; a share count or a price in KRW that is not written
    as a whole number is refused rather than rounded, as are `1.5`, `"1e3"` and `true`."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            return data
        if isinstance(data, str):
            if len(data) > self.MAX_STRING_LENGTH:
                self.fail("max_string_length")
            text = data.strip()
            if re.fullmatch(r"[+-]?[0-9]+", text):
                return int(text)
        self.fail("invalid")


class TradeRequestSerializer(serializers.Serializer):
    """The design's manual order: BUY 1 at market unless told otherwise."""

    default_error_messages = {
        "invalid": "주문 요청은 JSON 객체나 폼 데이터여야 합니다 (받은 형식: {datatype}).",
    }

    side = serializers.ChoiceField(
        choices=OrderSide.choices, default=OrderSide.BUY,
        error_messages={"invalid_choice": "side는 buy(매수) 또는 sell(매도)이어야 합니다: {input}"},
    )
    quantity = WholeNumberField(
        default=1, min_value=1, help_text="shares, a positive integer (a JSON integer or a string of digits)",
        error_messages={"invalid": "quantity(주문 수량)는 1 이상의 정수여야 합니다.",
                        "null": "quantity(주문 수량)는 1 이상의 정수여야 합니다.",
                        "min_value": "quantity(주문 수량)는 1 이상의 정수여야 합니다.",
                        "max_string_length": "quantity(주문 수량)가 너무 깁니다."},
    )
    price = WholeNumberField(
        required=False, allow_null=True, min_value=1,
        help_text="limit price in KRW on the KRX tick table; leave out (or null) for a market order",
        error_messages={"invalid": "price(지정가)는 1원 이상의 정수여야 합니다.",
                        "min_value": "price(지정가)는 1원 이상의 정수여야 합니다.",
                        "max_string_length": "price(지정가)가 너무 깁니다."},
    )
    account = WholeNumberField(
        required=False, allow_null=True, min_value=1, max_value=MAX_ID,
        help_text="one of your broker account ids; default account if omitted",
        error_messages={"invalid": "account는 계좌 id(정수)여야 합니다.", "min_value": "account는 계좌 id(정수)여야 합니다.",
                        "max_value": "account는 계좌 id(정수)여야 합니다."},
    )


class TradeResponseSerializer(serializers.Serializer):
    trade_id = serializers.IntegerField(help_text="the order id (GET /api/orders/{id}/)")
    status = OrderStatusField()
    client_order_id = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField()
    side = serializers.ChoiceField(choices=OrderSide.choices)
    order_type = serializers.CharField(help_text="01 market, 00 limit")
    quantity = serializers.IntegerField()
    price = serializers.IntegerField(help_text="limit price, 0 for a market order")
    trading_date = serializers.DateField()
    account = serializers.IntegerField()
    filled_quantity = serializers.IntegerField()
    average_fill_price = serializers.IntegerField()


# The API's one error body (`{"detail": "..."}`), under the name this module used to give it.
OrdersErrorSerializer = ErrorSerializer


class DriftFilterSerializer(serializers.Serializer):
    """Query parameters of `GET /api/drift/` (all optional)."""

    config = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False,
                                      help_text="only this strategy config of yours")
    week = serializers.DateField(required=False, help_text="any day of the week (its Monday is used)")
    alert = serializers.BooleanField(required=False, allow_null=True, default=None,
                                     help_text="only the weeks that drifted (true) or not (false)")


class DriftTradeSerializer(serializers.Serializer):
    """One trade (code, side, trading date) on either side of the comparison."""

    code = serializers.CharField()
    side = serializers.ChoiceField(choices=OrderSide.choices)
    date = serializers.DateField()
    kind = serializers.ChoiceField(choices=[(k, k) for k in ("matched", "missing", "extra", "carried")],
                                   help_text="missing: backtest only; extra: live only; carried: a live sale of a "
                                             "position bought before the week (not counted)")
    backtest_quantity = serializers.IntegerField()
    live_quantity = serializers.IntegerField()
    quantity_diff = serializers.IntegerField(help_text="live − backtest shares")
    backtest_price = serializers.IntegerField(allow_null=True)
    live_price = serializers.FloatField(allow_null=True, help_text="average fill price, KRW")
    backtest_reason = serializers.CharField(allow_blank=True)
    live_reason = serializers.CharField(allow_blank=True)
    backtest_pnl = serializers.IntegerField(allow_null=True)
    live_pnl = serializers.IntegerField(allow_null=True)
    slippage_krw = serializers.IntegerField(allow_null=True, help_text="matched trades: positive when live did worse")
    slippage_bps = serializers.FloatField(allow_null=True)


class WeeklyDriftSerializer(serializers.ModelSerializer):
    """A week of live trading against the backtest of the same config over the same bars."""

    config_name = serializers.CharField(source="config.name", read_only=True)
    threshold_bps = serializers.IntegerField(source="config.drift_alert_bps", read_only=True)
    trades = DriftTradeSerializer(many=True, read_only=True)
    alert_reasons = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = WeeklyDrift
        fields = ["id", "config", "config_name", "week_start", "week_end", "matched_count", "missing_count",
                  "extra_count", "qty_diff_count", "live_pnl", "backtest_pnl", "pnl_gap_krw", "invested_krw",
                  "gap_bps", "slippage_krw", "slippage_bps", "alert", "alert_reasons", "threshold_bps", "trades",
                  "computed_at"]
        read_only_fields = fields
