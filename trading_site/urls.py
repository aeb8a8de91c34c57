from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView

from accounts import views as accounts_views
from accounts.api import BrokerAccountViewSet, MeView, SecurityEventListView, StepUpView, TokenFormView
from accounts.step_up import admin_has_permission, staff_admin_login
from market.api import (
    ConnectionTestView,
    InstrumentAnalysisView,
    InstrumentBarsView,
    InstrumentDetailView,
    InstrumentListView,
    InstrumentQuoteView,
    PricesView,
)
from market.streaming import sse
from orders.api import (
    FillViewSet,
    OrderViewSet,
    PositionsView,
    TradeLogViewSet,
    TradeView,
    TradingControlView,
    WeeklyDriftViewSet,
)
from reports.api import WeeklyReportDetailView, WeeklyReportListView
from strategies.api import BacktestRunViewSet, StrategyConfigViewSet, StrategyListView, SweepViewSet
from strategies.walk_forward_api import WalkForwardViewSet

from . import views
from .api import not_found

# The admin has no password form of its own: /admin/login/ sends to the site's login (allauth), so the
# same rate limits and failed-login lockout apply; staff come back to the admin page they asked for,
# other users get 403.
# Staff reach the admin only with a second factor used in this session (accounts.step_up): without one
# they are sent to set it up, with one not yet used to confirm it.
admin.site.login = staff_admin_login(secure_admin_login(admin.site.login))
admin.site.has_permission = admin_has_permission(admin.site.has_permission)


class LoginThrottledTokenObtainPairView(TokenObtainPairView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"


router = DefaultRouter()
router.register("broker-accounts", BrokerAccountViewSet, basename="broker-account")
router.register("strategy-configs", StrategyConfigViewSet, basename="strategy-config")
router.register("backtests", BacktestRunViewSet, basename="backtest")
router.register("sweeps", SweepViewSet, basename="sweep")
router.register("walk-forward", WalkForwardViewSet, basename="walk-forward")
router.register("orders", OrderViewSet, basename="order")
router.register("fills", FillViewSet, basename="fill")
router.register("trade-logs", TradeLogViewSet, basename="trade-log")
router.register("drift", WeeklyDriftViewSet, basename="drift")

api_patterns = [
    path("token/", LoginThrottledTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("auth/step-up/", StepUpView.as_view(), name="step_up"),
    path("token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("token/logout/", TokenBlacklistView.as_view(), name="token_logout"),
    path("me/", MeView.as_view(), name="me"),
    path("security-events/", SecurityEventListView.as_view(), name="security-events"),
    path("broker-accounts/<int:pk>/connection-test/", ConnectionTestView.as_view(), name="connection-test"),
    path("instruments/", InstrumentListView.as_view(), name="instrument-list"),
    path("instruments/<str:code>/", InstrumentDetailView.as_view(), name="instrument-detail"),
    path("instruments/<str:code>/bars/", InstrumentBarsView.as_view(), name="instrument-bars"),
    path("instruments/<str:code>/quote/", InstrumentQuoteView.as_view(), name="instrument-quote"),
    path("instruments/<str:code>/analysis/", InstrumentAnalysisView.as_view(), name="instrument-analysis"),
    path("strategies/", StrategyListView.as_view(), name="strategy-list"),
    path("positions/", PositionsView.as_view(), name="positions"),
    path("trading-control/", TradingControlView.as_view(), name="trading-control"),
    path("reports/", WeeklyReportListView.as_view(), name="report-list"),
    path("reports/<str:week>/", WeeklyReportDetailView.as_view(), name="report-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script from its own URL (?script), not inline: CSP.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="swagger"),
    # Redoc is not served (it needs what the CSP forbids: inline styles, web fonts); old links land on Swagger UI.
    path("redoc/", RedirectView.as_view(pattern_name="api:swagger", permanent=True)),
    path("", include(router.urls)),
    # Any other address under /api/ is a JSON 404 like the API's own, not the site's HTML page.
    re_path(r"^.*/$", not_found),
]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("token", TokenFormView.as_view(), name="token_form"),
    path("prices/<str:symbol>", PricesView.as_view(), name="prices"),
    path("trade/<str:symbol>", TradeView.as_view(), name="trade"),
    # Server-Sent Events (async views, served by the ASGI server): live prices and order events.
    re_path(r"^stream/market/(?P<code>[0-9A-Za-z]{6})/$", sse.market_stream, name="stream_market"),
    path("stream/dashboard/", sse.dashboard_stream, name="stream_dashboard"),
    path("api/", include((api_patterns, "api"))),
    # Before allauth's own: a passkey is not removed while it is the last second factor and real money is on.
    path("accounts/2fa/webauthn/keys/<int:pk>/remove/", accounts_views.remove_passkey, name="remove_passkey"),
    path("accounts/", include("allauth.urls")),
    path("accounts/", include("accounts.urls")),
    path("market/", include("market.urls")),
    path("strategies/", include("strategies.urls")),
    path("orders/", include("orders.urls")),
    path("reports/", include("reports.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
