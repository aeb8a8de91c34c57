"""Settings for the weekly KIS auto-trading site.

Everything is read from the environment (and from `.env` beside manage.py, or the file named by
ENV_FILE); any of them may instead come from a file named by NAME_FILE (the Docker secrets convention,
SecretFiles below). Defaults are the embedded local setup: SQLite, an in-process Celery transport on the
filesystem, the paper broker, no OpenAI key. `.env.example` documents every variable.
"""

from __future__ import annotations

import os
from datetime import time, timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _
from environ.fileaware_mapping import FileAwareMapping

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"


class SecretFiles(FileAwareMapping):
    """The environment, where any NAME may instead be given as NAME_FILE: the path of a file holding the
    value (the Docker secrets convention, SECRET_KEY_FILE=/run/secrets/secret_key; docker-compose.yml).

    django-environ's FileAwareMapping, made strict: NAME and NAME_FILE both set is an error (which one
    counts would be a guess); a file that cannot be read stops the start naming the variable and the path
    (never the content); trailing newlines are dropped (`echo value > file` writes one); an empty file
    means "not set", as an empty variable does. Read-only: nothing is written back to os.environ, so a
    child process inherits NAME_FILE alone and reads the file itself."""

    def __getitem__(self, key: str) -> str:
        path = self.env.get(f"{key}_FILE")
        if not path:
            return self.env[key]
        if key in self.env:
            raise ImproperlyConfigured(f"Both {key} and {key}_FILE are set: keep one of them.")
        if key not in self.files_cache:
            try:
                content = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or type(error).__name__
                raise ImproperlyConfigured(f"{key}_FILE names {path}, which cannot be read ({reason}).") from None
            value = content.rstrip("\r\n")
            if value.startswith("$"):
                # django-environ would read it as a reference to the variable named after the $.
                raise ImproperlyConfigured(f"The value in {key}_FILE ({path}) must not begin with $.")
            self.files_cache[key] = value
        if not self.files_cache[key]:
            raise KeyError(key)
        return self.files_cache[key]


class Env(environ.Env):
    ENVIRON = SecretFiles()


env = Env()
ENV_FILE = Path(os.environ.get("ENV_FILE", BASE_DIR / ".env"))
if ENV_FILE.is_file():
    # Values already in the process environment win over the file (CI sets DATABASE_URL this way).
    environ.Env.read_env(ENV_FILE, overwrite=False)

# .env.example lists every variable with an empty value: an empty value means "not set".
for _name, _value in list(os.environ.items()):
    if _value == "" and _name.isupper():
        del os.environ[_name]


def required(name: str) -> str:
    """A variable without which the site must not start; the error names it."""
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"Set the {name} environment variable (in .env or the environment), or {name}_FILE to a file holding it."
        )
    return value


DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "django-insecure-local-development-only-never-use-in-production"
SECRET_KEY = env("SECRET_KEY", default=_DEV_SECRET_KEY) if DEBUG else required("SECRET_KEY")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.kakao",
    "allauth.mfa",  # the second factor: TOTP, passkeys (WebAuthn), recovery codes
    # The project package: health, schedules, site-wide commands.
    "trading_site",
    # Our apps, in dependency order: each imports only apps above it.
    "accounts",
    "market",
    "strategies",
    "orders",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A total time budget for the broker calls of each request (BROKER_WEB_DEADLINE_SECONDS).
    "market.middleware.BrokerDeadlineMiddleware",
    # The Content-Security-Policy header (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "trading_site.middleware.KoreanFirstLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The request being served, for the audit trail's address and user agent (accounts.audit).
    "accounts.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # StepUpRequired from a page, HTMX or the admin → the second-factor re-authentication (accounts.step_up).
    "accounts.step_up.StepUpMiddleware",
]

ROOT_URLCONF = "trading_site.urls"
WSGI_APPLICATION = "trading_site.wsgi.application"
ASGI_APPLICATION = "trading_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "trading_site.context_processors.site",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# The password apart from the URL (DATABASE_PASSWORD or DATABASE_PASSWORD_FILE): docker-compose gives the
# app and the database server one secret file, so the two cannot disagree.
if env.str("DATABASE_PASSWORD", default=""):
    DATABASES["default"]["PASSWORD"] = env.str("DATABASE_PASSWORD")
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            # Strict mode: MySQL refuses truncated or invalid values instead of silently mangling them.
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        }
    )
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process and the in-process worker share the file. Every
    # transaction takes the write lock when it begins (IMMEDIATE), so it waits its turn (up to the
    # timeout) there; a deferred one that read first and writes later fails at once with "database is
    # locked" whenever another connection wrote in between (SQLite cannot wait for a stale snapshot).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# MariaDB cannot enforce allauth's conditional unique constraints on EmailAddress; allauth's own
# code still checks them, and our tests cover the e-mail uniqueness rules.
SILENCED_SYSTEM_CHECKS = ["models.W036"]

# --- Redis, cache, Celery -----------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_DATA_DIR = Path(env("CELERY_DATA_DIR", default=str(BASE_DIR / "var" / "celery")))
if REDIS_URL:
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    # No server needed: kombu's filesystem transport passes messages through a folder, so the web
    # process and the embedded worker (`celery worker -B`) really exchange tasks.
    CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
    }
# Results let a caller wait on a task (`.get()`): Redis when configured, else files beside the queue.
CELERY_RESULT_BACKEND = env(
    "CELERY_RESULT_BACKEND", default=REDIS_URL or f"file://{CELERY_DATA_DIR / 'results'}"
)
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_TIMEZONE = "Asia/Seoul"
CELERY_ENABLE_UTC = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Queues (orders.fanout): trading work (the weekly jobs per account, reconciliation, alerts, bar refresh)
# never waits behind research (backtests, sweeps, walk-forward) or reports. A worker takes the queues
# named by `celery worker -Q`; scripts/run's single worker takes all three, docker-compose runs
# `worker-trading` (-Q trading) and `worker-research` (-Q research,celery).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "market.analyze_last_week": {"queue": "research"},
    "orders.*": {"queue": "trading"},
    "market.*": {"queue": "trading"},
    "strategies.*": {"queue": "research"},
    "reports.*": {"queue": "research"},
}
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Auth ---------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SITE_ID = 1
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # never merge accounts on an unverified e-mail
SOCIALACCOUNT_LOGIN_ON_GET = False  # a POST starts the OAuth dance (CSRF-safe)

# Which address is the client's, for allauth's login limits and DRF's throttles alike: the number of
# reverse proxies of ours in front of gunicorn, each appending the address it saw to X-Forwarded-For.
# 0 (no proxy): the TCP peer, X-Forwarded-For ignored (anyone can write it). N: the N-th entry from the
# right, the one our outermost proxy wrote. Too high lets a client pick its address; too low makes every
# client share the proxy's address (and its limits).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more")
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
# Keys the failed-login lockout on the account and the client address together (accounts.adapters).
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
# The site login, the admin login (routed through it) and the API's /api/token/ and /token all count here.
ACCOUNT_RATE_LIMITS = {
    # Every login POST from one client address, right or wrong (allauth's default): a burst ends in 429.
    "login": "30/m/ip",
    # Failed logins, checked before the password is (a right password gives its count back):
    # - 5 per 5 minutes per account *and* client address ("key", see accounts.adapters): the lockout. It
    #   stops guessing one password at the address guessing it, while the owner elsewhere, and the other
    #   users at that address, log in as usual. Listed first so attempts it refuses (no password checked)
    #   do not also use up the address's budget below.
    # - 30 per 10 minutes and 200 a day per client address: one address spraying guesses over many
    #   usernames. People sharing an address (an office, a household) mistype far fewer passwords than
    #   that, so they are not refused; a sprayer gets at most 200 guesses a day per address.
    "login_failed": "5/5m/key,30/10m/ip,200/d/ip",
}

# --- Second factor (allauth.mfa) and step-up ---------------------------------------------------
# TOTP (authenticator apps), passkeys/WebAuthn and recovery codes. A passkey can also be the login.
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_ADAPTER = "accounts.adapters.MFAAdapter"  # secrets encrypted at rest; no turning it off while real money is on
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", default="KIS 자동매매")
# WebAuthn needs a secure origin; http://localhost counts as one in browsers. Allowed on other plain-HTTP
# origins only for local development (DEBUG).
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
# Step-up: switching on real money, adding or changing broker keys, lifting a kill switch and trading on
# a real account need a second factor used within this many seconds (on the pages: allauth's
# re-authentication with the second factor; for a JWT client: POST /api/auth/step-up/).
STEP_UP_SECONDS = env.int("STEP_UP_SECONDS", default=300)
ACCOUNT_REAUTHENTICATION_TIMEOUT = STEP_UP_SECONDS

KAKAO_CLIENT_ID = env("KAKAO_CLIENT_ID", default="")
KAKAO_CLIENT_SECRET = env("KAKAO_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS: dict = {
    "kakao": {"SCOPE": ["profile_nickname", "account_email"], "VERIFIED_EMAIL": False},
}
if KAKAO_CLIENT_ID:
    # Without a client id (here or as a SocialApp in the admin) allauth lists no Kakao button.
    SOCIALACCOUNT_PROVIDERS["kakao"]["APP"] = {
        "client_id": KAKAO_CLIENT_ID,
        "secret": KAKAO_CLIENT_SECRET,
        "key": "",
    }

# --- API: DRF, JWT, OpenAPI ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # drf-spectacular's generator documenting the errors every operation can answer, and every error
    # body an object with a `detail` (trading_site/api.py).
    "DEFAULT_SCHEMA_CLASS": "trading_site.api.AutoSchema",
    "EXCEPTION_HANDLER": "trading_site.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("THROTTLE_ANON", default="120/min"),
        "user": env("THROTTLE_USER", default="1200/min"),
        "login": env("THROTTLE_LOGIN", default="20/min"),
    },
    # Throttles count per client address as TRUSTED_PROXY_COUNT defines it; DRF's default (None) would
    # take X-Forwarded-For as sent, so a made-up header per request escaped every throttle.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    # /api/token/ checks passwords through the site login's failed-login limits (ACCOUNT_RATE_LIMITS).
    "TOKEN_OBTAIN_SERIALIZER": "accounts.serializers.LoginLimitedTokenObtainPairSerializer",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "KIS Weekly Trader API",
    "DESCRIPTION": "주간 자동매매 시스템 API (JWT: POST /api/token/ 또는 /token)",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI comes from the sidecar package: the page works offline, no CDN. (Redoc is not served:
    # it needs inline styles, a blob: worker and web fonts, which the Content-Security-Policy forbids.)
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No validator badge: it would send the schema's address to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Broker credentials -------------------------------------------------------------------------
# Fernet keys (comma separated; the first encrypts, all decrypt, so keys can be rotated).
# Without keys in DEBUG, a key is derived from SECRET_KEY (accounts.crypto); never in production.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[]) if DEBUG else [
    key.strip() for key in required("FIELD_ENCRYPTION_KEYS").split(",") if key.strip()
]
BROKER_BACKEND = env("BROKER_BACKEND", default="paper")
# Broker commission per side as a fraction (0.00015 = 0.015%); empty: market.krx.fees' default.
# The paper broker and the backtester charge it; the sell tax follows the dated table in market.krx.fees.
COMMISSION_RATE = env("COMMISSION_RATE", default="")  # "paper" (embedded) or "kis"
KIS_APP_KEY = env("KIS_APP_KEY", default="")
KIS_APP_SECRET = env("KIS_APP_SECRET", default="")
KIS_ACCOUNT = env("KIS_ACCOUNT", default="")
KIS_ACCOUNT_PRODUCT_CODE = env("KIS_ACCOUNT_PRODUCT_CODE", default="01")
KIS_URL_BASE = env("KIS_URL_BASE", default="https://openapivts.koreainvestment.com:29443")
KIS_HTS_ID = env("KIS_HTS_ID", default="")
# Where `import_instruments --download` fetches kospi_code.mst.zip and kosdaq_code.mst.zip.
KIS_MASTER_BASE_URL = env("KIS_MASTER_BASE_URL", default="https://new.real.download.dws.co.kr/common/master")
# simulated = KIS's 모의투자 host, real = the real host. Defaults from KIS_URL_BASE.
KIS_MODE = env("KIS_MODE", default="simulated" if "openapivts" in KIS_URL_BASE else "real")
if KIS_MODE not in ("simulated", "real"):
    raise ImproperlyConfigured("KIS_MODE must be 'simulated' or 'real'")
# Host per KIS client mode ("paper" = 모의투자). Empty means KIS's published host. KIS_URL_BASE sets the
# host of its own mode, so pointing it at a local fake KIS server routes every account of that mode there.
KIS_BASE_URLS = {
    "real": env("KIS_REAL_BASE_URL", default=""),
    "paper": env("KIS_PAPER_BASE_URL", default=""),
}
_kis_client_mode = "paper" if KIS_MODE == "simulated" else "real"
KIS_BASE_URLS[_kis_client_mode] = KIS_BASE_URLS[_kis_client_mode] or KIS_URL_BASE
# KIS WebSocket hosts (plain ws://, §1), per client mode; empty means KIS's published host. Tests and the
# stream benchmark point them at a fake server.
KIS_WS_URLS = {
    "real": env("KIS_REAL_WS_URL", default="ws://ops.koreainvestment.com:21000"),
    "paper": env("KIS_PAPER_WS_URL", default="ws://ops.koreainvestment.com:31000"),
}

# --- Real time (issue 13): the streaming process (manage.py stream_market) and the SSE endpoint ---------
# The bus between them: Redis pub/sub when REDIS_URL is set; otherwise a local bus on this machine
# (ZeroMQ on loopback; the streamer hosts it). "inprocess" is for tests only.
REALTIME_BUS = env("REALTIME_BUS", default="redis" if REDIS_URL else "local")
REALTIME_LOCAL_BUS_PORTS = (env.int("REALTIME_LOCAL_PUB_PORT", default=8765),
                            env.int("REALTIME_LOCAL_SUB_PORT", default=8766))
# The paper broker's simulated stream: "market" follows the KRX calendar and hours; "always" simulates an
# open session whenever the streamer runs (the demo at night), labelled as simulated on the pages.
REALTIME_SIM_SESSION = env("REALTIME_SIM_SESSION", default="market")
if REALTIME_SIM_SESSION not in ("market", "always"):
    raise ImproperlyConfigured("REALTIME_SIM_SESSION must be 'market' or 'always'")
REALTIME_SIM_TICKS_PER_SECOND = env.float("REALTIME_SIM_TICKS_PER_SECOND", default=4.0)  # per symbol
# No frame and no PINGPONG for this long: the KIS session is stale and is reconnected (KIS pings ~110 s).
REALTIME_STALE_SECONDS = env.float("REALTIME_STALE_SECONDS", default=150.0)
# Open live streams (browser tabs) one user may hold at once; the next one is refused (429).
REALTIME_MAX_STREAMS_PER_USER = env.int("REALTIME_MAX_STREAMS_PER_USER", default=6)

# Total time one web request may spend on broker calls (time-outs, retries, waits), then a Korean
# "broker too slow" answer (API: 504). Well inside gunicorn's 30 s worker time-out (`--timeout 30` in the
# Dockerfile, docker-compose and scripts/serve); 0 switches the budget off. Tasks and commands have none.
BROKER_WEB_DEADLINE_SECONDS = env.float("BROKER_WEB_DEADLINE_SECONDS", default=20.0)

# --- Risk and notifications ---------------------------------------------------------------------
# Pre-trade limits (orders.risk); a TradingControl row in the admin overrides them per account or
# globally. Empty ORDERS_MAX_ORDER_KRW or 0 switches that check off; empty ORDERS_DAILY_LOSS_LIMIT_KRW
# (the default) means no daily loss limit.
def _optional_krw(name: str, default: int | None) -> int | None:
    raw = env(name, default=None)
    if raw is None:
        return default
    raw = str(raw).strip().replace(",", "").replace("_", "")
    if not raw:
        return None
    if not raw.isdigit():
        raise ImproperlyConfigured(f"{name} must be a whole number of KRW, got {raw!r}")
    return int(raw) or None


ORDERS_MAX_ORDER_KRW = _optional_krw("ORDERS_MAX_ORDER_KRW", 50_000_000)
ORDERS_DAILY_LOSS_LIMIT_KRW = _optional_krw("ORDERS_DAILY_LOSS_LIMIT_KRW", None)
# The missed-slot policy's cut-off: a late entry still runs its trading day until this time (Seoul).
try:
    ORDERS_ENTRY_CUTOFF = time.fromisoformat(env("ORDERS_ENTRY_CUTOFF", default="13:00"))
except ValueError as error:
    raise ImproperlyConfigured(f"ORDERS_ENTRY_CUTOFF must be a time such as 13:00: {error}") from error
# KIS has no client order id: an order whose answer was lost is matched to the broker's daily orders by
# its attributes and by the time its request was in flight. The broker's clock is not ours (seen 5 s
# behind), so the broker's order time may fall this many seconds outside that window either way.
ORDERS_BROKER_CLOCK_TOLERANCE_SECONDS = env.int("ORDERS_BROKER_CLOCK_TOLERANCE_SECONDS", default=120)
# Alerts (fills, rejections, position mismatches, failed jobs) by e-mail to the account owner (needs
# EMAIL_URL) and/or as {"text": ...} POSTed to a Slack-compatible incoming webhook.
NOTIFY_EMAIL = env.bool("NOTIFY_EMAIL", default=False)
NOTIFY_WEBHOOK_URL = env("NOTIFY_WEBHOOK_URL", default="")

# --- OpenAI (reports) ---------------------------------------------------------------------------
OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_MODEL = env("OPENAI_MODEL", default="gpt-4o-mini")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
OPENAI_TIMEOUT = env.float("OPENAI_TIMEOUT", default=60.0)  # seconds per call
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=3)  # retries of transient errors (429, 5xx, time-out)
OPENAI_RETRY_BACKOFF = env.float("OPENAI_RETRY_BACKOFF", default=2.0)  # first wait (s), doubled each retry
# Sampling temperature; "none" sends none (for models that accept only their default).
_openai_temperature = env("OPENAI_TEMPERATURE", default="0.2")
OPENAI_TEMPERATURE = None if _openai_temperature.lower() == "none" else float(_openai_temperature)
OPENAI_MAX_OUTPUT_TOKENS = env.int("OPENAI_MAX_OUTPUT_TOKENS", default=2000)
# An answer cut at that limit is asked once more with twice the room, at most this many tokens.
OPENAI_MAX_OUTPUT_TOKENS_CEILING = env.int("OPENAI_MAX_OUTPUT_TOKENS_CEILING", default=4000)
# Price per million tokens in USD, (input, output), by model-name prefix (the longest prefix wins):
# the reports store their cost from it. Published OpenAI list prices; add your compatible server's
# model here (or set OPENAI_PRICE_INPUT / OPENAI_PRICE_OUTPUT for OPENAI_MODEL). Unknown model: no cost.
OPENAI_PRICES = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5": (1.25, 10.00),
}
if env("OPENAI_PRICE_INPUT", default="") and env("OPENAI_PRICE_OUTPUT", default=""):
    OPENAI_PRICES[OPENAI_MODEL] = (env.float("OPENAI_PRICE_INPUT"), env.float("OPENAI_PRICE_OUTPUT"))
# Weekly reports: e-mail each new report to its owner (when the user has an e-mail address).
REPORTS_EMAIL = env.bool("REPORTS_EMAIL", default=False)

# --- E-mail -------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="noreply@localhost")

# --- i18n, time ---------------------------------------------------------------------------------
LANGUAGE_CODE = "ko"
LANGUAGES = [("ko", _("Korean")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Seoul"
USE_TZ = True

# --- Static files -------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise expects it even before collectstatic
WHITENOISE_USE_FINDERS = DEBUG
# HTMX, Chart.js and Lightweight Charts (the candle charts) come from npm (package.json, installed by the
# setup scripts), never a CDN.
_NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [BASE_DIR / "static"] + [
    (prefix, path)
    for prefix, path in (
        ("vendor/htmx", _NODE_MODULES / "htmx.org" / "dist"),
        ("vendor/chartjs", _NODE_MODULES / "chart.js" / "dist"),
        ("vendor/lightweight-charts", _NODE_MODULES / "lightweight-charts" / "dist"),
    )
    if path.is_dir()
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env(
            "STATICFILES_BACKEND",
            default="django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# --- Security (clean `check --deploy` when DEBUG is off) ----------------------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): scripts, styles, fonts and data requests only from this site.
# The templates have no inline script or event handler (static/js/site.js does what `onchange` and
# `onsubmit` used to); a template that really needs an inline <script> or <style> gives it
# `nonce="{{ request.csp_nonce }}"`. HTMX runs with allowEval off and its indicator styles in site.css
# (the htmx-config meta tag in base.html), so neither 'unsafe-eval' nor inline <style> is needed.
# Style *attributes* stay allowed ('unsafe-inline' in style-src-attr only): the backtest progress bars
# and heat maps size and colour cells with them (strategies templates); an attribute cannot run a script
# or style anything but its own element, the images it could name are limited by img-src, and nothing
# untrusted reaches one (autoescaping; the report sanitiser allows no style attribute). Forms may post to this site and, for Kakao login, to
# Kakao's OAuth pages: Chromium applies form-action to the redirect that follows the POST.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": [UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF, "https://kauth.kakao.com", "https://accounts.kakao.com"],
        "frame-ancestors": [NONE],
    }
}

# --- Logging ------------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "mask_secrets": {"()": "trading_site.logging.MaskSecretsFilter"},
        "redact_kis": {"()": "market.kis.masking.RedactingLogFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask_secrets", "redact_kis"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # urllib3 logs full request URLs at DEBUG, account number included: keep it at WARNING.
    "loggers": {"django.db.backends": {"level": "INFO"}, "urllib3": {"level": "WARNING"}},
}
