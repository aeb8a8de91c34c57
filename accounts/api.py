from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, mixins, parsers, permissions, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from trading_site.api import Conflict, ErrorSerializer, ValidationErrorSerializer

from . import audit, selectors, services, step_up
from .models import BrokerAccount, SecurityEvent
from .serializers import (
    BrokerAccountSerializer,
    StepUpRequestSerializer,
    StepUpRequiredSerializer,
    StepUpResponseSerializer,
    TokenFormResponseSerializer,
    TokenFormSerializer,
    UserSerializer,
)


class MeView(APIView):
    @extend_schema(responses=UserSerializer)
    def get(self, request):
        return Response(UserSerializer(request.user).data)


NOT_THE_OWNER = OpenApiResponse(ErrorSerializer, description="staff see every account but change only their own")


# Keys added or changed, or real money switched on, without a recent second factor (accounts.step_up); or
# another user's account.
STEP_UP_OR_NOT_THE_OWNER = OpenApiResponse(
    StepUpRequiredSerializer,
    description="step_up_required: keys added or changed, or real money switched on, need a second factor used "
                "within STEP_UP_SECONDS (POST /api/auth/step-up/); or not the owner (a `detail` only)",
)


@extend_schema_view(
    create=extend_schema(responses={201: BrokerAccountSerializer, 403: STEP_UP_OR_NOT_THE_OWNER}),
    update=extend_schema(responses={200: BrokerAccountSerializer, 403: STEP_UP_OR_NOT_THE_OWNER}),
    partial_update=extend_schema(responses={200: BrokerAccountSerializer, 403: STEP_UP_OR_NOT_THE_OWNER}),
    destroy=extend_schema(responses={
        204: None,
        403: NOT_THE_OWNER,
        409: OpenApiResponse(ErrorSerializer, description="orders or strategy configs refer to the account: it is "
                                                          "kept; deactivate its strategies or halt it instead"),
    }),
)
class BrokerAccountViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A user's broker accounts. Other users' accounts answer 404, as if they did not exist."""

    serializer_class = BrokerAccountSerializer

    def get_queryset(self):
        return selectors.broker_accounts_for(self.request.user)

    def _require_owner(self, account: BrokerAccount) -> None:
        if account.owner_id != self.request.user.pk:
            raise PermissionDenied(_("Only the owner can change a broker account."))

    def _save(self, serializer, account: BrokerAccount):
        step_up.require_step_up_for_broker_change(self.request, account, serializer.validated_data)
        try:
            serializer.instance = services.save_broker_account(account, **serializer.validated_data)
        except DjangoValidationError as exc:
            # A rule of the whole account (Django's "__all__") is DRF's non_field_errors.
            errors = {"non_field_errors" if name == "__all__" else name: messages
                      for name, messages in exc.message_dict.items()}
            raise ValidationError(errors) from exc

    def perform_create(self, serializer):
        self._save(serializer, BrokerAccount(owner=self.request.user))

    def perform_update(self, serializer):
        self._require_owner(serializer.instance)
        self._save(serializer, serializer.instance)

    def perform_destroy(self, instance):
        self._require_owner(instance)
        try:
            services.delete_broker_account(instance)
        except services.BrokerAccountInUse as error:
            raise Conflict(str(error)) from error


class TokenFormView(APIView):
    """`POST /token` (form fields `username`, `password`) → `{"access_token", "token_type": "bearer"}`.

    The design's OAuth2-password-style form next to simplejwt's JSON `/api/token/`. Both count against
    the site login's failed-login limits (429 while they refuse) besides DRF's `login` throttle."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    parser_classes = [parsers.FormParser, parsers.MultiPartParser, parsers.JSONParser]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        request=TokenFormSerializer,
        responses={
            200: TokenFormResponseSerializer,
            401: OpenApiResponse(ErrorSerializer, description="Wrong username or password."),
            429: OpenApiResponse(ErrorSerializer, description="Too many attempts or failed logins; try again later."),
        },
    )
    def post(self, request):
        form = TokenFormSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            user = services.authenticate_login(
                request, login=form.validated_data["username"], password=form.validated_data["password"]
            )
        except services.LoginLimited as error:
            raise Throttled(detail=str(error)) from error
        if user is None or not user.is_active:
            return Response(
                {"detail": _("Wrong username or password.")},
                status=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        refresh = RefreshToken.for_user(user)
        lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
        return Response(
            {
                "access_token": str(refresh.access_token),
                "refresh_token": str(refresh),
                "token_type": "bearer",
                "expires_in": int(lifetime.total_seconds()),
            },
            status=status.HTTP_200_OK,
        )


class StepUpView(APIView):
    """`POST /api/auth/step-up/` `{"code": "123456"}`: a JWT client proves its second factor (a TOTP code,
    or a recovery code, used up) and gets an access token that counts as stepped up for STEP_UP_SECONDS:
    switching real money on, changing broker keys, lifting a kill switch and `POST /trade` on a real
    account answer 403 `step_up_required` without it."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"

    @extend_schema(
        tags=["auth"], operation_id="auth_step_up", request=StepUpRequestSerializer,
        responses={
            200: StepUpResponseSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="wrong or used code, or no second factor set "
                                                                        "up (`detail`); or a missing code (`code`)"),
            429: OpenApiResponse(ErrorSerializer, description="too many wrong codes; try again later"),
        },
    )
    def post(self, request):
        form = StepUpRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            token, authenticator, expires = step_up.step_up_with_code(request.user, form.validated_data["code"],
                                                                       request=request)
        except step_up.StepUpRefused as refused:
            if refused.limited:
                raise Throttled(detail=refused.message) from refused
            return Response({"detail": refused.message}, status=status.HTTP_400_BAD_REQUEST)
        return Response({
            "access": str(token),
            "step_up_expires_at": timezone.localtime(dt.datetime.fromtimestamp(expires, tz=dt.UTC)),
            "method": authenticator.type,
        })


class SimpleJwtViewsSchema(OpenApiViewExtension):
    """simplejwt's token views (`/api/token/`, `/api/token/refresh/`, `/api/token/logout/`) answer 401
    for wrong credentials or an invalid, expired or blacklisted token: documented here, since the
    views are the library's."""

    target_class = "rest_framework_simplejwt.views.TokenViewBase"
    match_subclasses = True

    def view_replacement(self):
        unauthorised = OpenApiResponse(
            ErrorSerializer, description="wrong username or password, or an invalid, expired or blacklisted token"
        )
        response = self.target.get_serializer_class(self.target())

        class Documented(self.target):
            @extend_schema(responses={200: response, 401: unauthorised})
            def post(self, request, *args, **kwargs):
                return super().post(request, *args, **kwargs)

        return Documented


# --- 보안 활동 (security activity): the user's own audit trail ------------------------------------------
class SecurityEventSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True, help_text="the event, translated")
    broker_account = serializers.IntegerField(source="broker_account_id", read_only=True, allow_null=True,
                                              help_text="null once the account is deleted (the label stays)")
    actor = serializers.CharField(source="actor_username", read_only=True,
                                  help_text="who did it when not you (staff in the admin); empty otherwise")
    summary = serializers.SerializerMethodField(help_text="one line on the event, translated")

    class Meta:
        model = SecurityEvent
        fields = ["id", "kind", "kind_display", "created_at", "ip_address", "user_agent", "broker_account",
                  "broker_account_label", "actor", "summary", "detail"]
        read_only_fields = fields

    def get_summary(self, obj: SecurityEvent) -> str:
        return audit.event_summary(obj)


class SecurityEventListView(generics.ListAPIView):
    """`GET /api/security-events/`: your own security events (logins, second-factor changes, real-money
    switches, broker keys, the kill switch, manual orders), newest first, paginated. Nobody else's,
    staff included (the admin is where staff read everyone's)."""

    serializer_class = SecurityEventSerializer

    def get_queryset(self):
        return audit.security_events_for(self.request.user)

    @extend_schema(tags=["accounts"], operation_id="security_events_list")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
