from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, parsers, permissions, status, viewsets
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from trading_site.api import Conflict, ErrorSerializer

from . import selectors, services
from .models import BrokerAccount
from .serializers import (
    BrokerAccountSerializer,
    TokenFormResponseSerializer,
    TokenFormSerializer,
    UserSerializer,
)


class MeView(APIView):
    @extend_schema(responses=UserSerializer)
    def get(self, request):
        return Response(UserSerializer(request.user).data)


NOT_THE_OWNER = OpenApiResponse(ErrorSerializer, description="staff see every account but change only their own")


@extend_schema_view(
    update=extend_schema(responses={200: BrokerAccountSerializer, 403: NOT_THE_OWNER}),
    partial_update=extend_schema(responses={200: BrokerAccountSerializer, 403: NOT_THE_OWNER}),
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
