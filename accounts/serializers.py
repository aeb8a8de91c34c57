from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, serializers
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from trading_site.api import JsonTypesMixin

from . import services
from .models import BrokerAccount, account_number_validator


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "is_staff", "date_joined"]
        read_only_fields = fields


class BrokerAccountSerializer(JsonTypesMixin, serializers.ModelSerializer):
    """Secrets are write-only; reads give masked values only."""

    app_key = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=True)
    app_secret = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=True)
    account_number = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=8, trim_whitespace=True,
        validators=[RegexValidator(r"^([0-9]{8})?$", account_number_validator.message)],
        help_text="the first 8 digits of the account number; blank keeps the stored one",
    )
    masked_app_key = serializers.CharField(read_only=True)
    masked_account_number = serializers.CharField(read_only=True)
    has_app_secret = serializers.SerializerMethodField()
    owner = serializers.CharField(source="owner.username", read_only=True)
    confirm_live_trading = serializers.BooleanField(
        write_only=True, required=False, help_text="Real accounts send orders only after this confirmation."
    )

    class Meta:
        model = BrokerAccount
        fields = [
            "id", "owner", "name", "mode", "app_key", "app_secret", "account_number", "product_code",
            "hts_id", "is_default", "confirm_live_trading", "live_trading_confirmed_at", "masked_app_key", "masked_account_number", "has_app_secret",
            "created_at", "updated_at",
        ]
        read_only_fields = ["id", "owner", "live_trading_confirmed_at", "created_at", "updated_at"]
        # Uniqueness and cross-field rules are checked by the service on the model.
        validators: list = []

    def validate_name(self, value: str) -> str:
        request = self.context.get("request")
        if request is not None:
            taken = BrokerAccount.objects.filter(owner=request.user, name=value)
            if self.instance is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                raise serializers.ValidationError("같은 이름의 계좌가 이미 있습니다.")
        return value

    def get_has_app_secret(self, obj: BrokerAccount) -> bool:
        return bool(obj.app_secret)


class TokenFormSerializer(JsonTypesMixin, serializers.Serializer):
    """The design's `POST /token` form: username and password as form fields."""

    username = serializers.CharField(label=_("username"))
    password = serializers.CharField(label=_("password"), style={"input_type": "password"}, trim_whitespace=False)


class TokenFormResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="bearer")
    expires_in = serializers.IntegerField(help_text="seconds")


class LoginLimitedTokenObtainPairSerializer(TokenObtainPairSerializer):
    """simplejwt's `/api/token/` (SIMPLE_JWT["TOKEN_OBTAIN_SERIALIZER"]), checking the password through
    the site login's failed-login limits (accounts.services.authenticate_login): 429 while they refuse.
    The rest repeats simplejwt's validate(), which cannot be reused: it calls django's authenticate() itself."""

    def validate(self, attrs):
        try:
            self.user = services.authenticate_login(
                self.context["request"], login=attrs[self.username_field], password=attrs["password"]
            )
        except services.LoginLimited as error:
            raise exceptions.Throttled(detail=str(error)) from error
        if not jwt_settings.USER_AUTHENTICATION_RULE(self.user):
            raise exceptions.AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")
        refresh = self.get_token(self.user)
        data = {"refresh": str(refresh), "access": str(refresh.access_token)}
        if jwt_settings.UPDATE_LAST_LOGIN:
            update_last_login(None, self.user)
        return data


class StepUpRequestSerializer(JsonTypesMixin, serializers.Serializer):
    code = serializers.CharField(max_length=64, help_text="a 6-digit code of your authenticator app, or a recovery code")


class StepUpResponseSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="an access token that proves the step-up; use it for the sensitive call")
    step_up_expires_at = serializers.DateTimeField(help_text="until when the step-up counts (STEP_UP_SECONDS)")
    method = serializers.CharField(help_text="totp or recovery_codes")


class StepUpRequiredSerializer(serializers.Serializer):
    """403 `step_up_required`: the action needs a second factor used within STEP_UP_SECONDS (every field);
    other 403s of the same operation carry the `detail` only."""

    detail = serializers.CharField(help_text="what to do, in Korean")
    code = serializers.CharField(required=False, help_text="step_up_required")
    action = serializers.CharField(required=False, help_text="real_money_on, broker_keys, lift_kill_switch or real_order")
    has_second_factor = serializers.BooleanField(required=False, help_text="false: set one up first (setup_url)")
    step_up_seconds = serializers.IntegerField(required=False)
    step_up_url = serializers.CharField(required=False, help_text="POST a TOTP or recovery code here for a stepped-up token")
    setup_url = serializers.CharField(required=False)
