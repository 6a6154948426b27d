"""Settings, read from the environment; with nothing set, the embedded default (SQLite, in-memory)."""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

from waportal import media_storage

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


DATA_DIR = Path(os.environ.get("WAPORTAL_DATA_DIR") or BASE_DIR / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")


def _redis_of_test_process(url: str, worker: str) -> str:
    """Under pytest-xdist (`make test` runs the suite in several processes) each process has a database of
    its own; it needs a Redis database of its own too, or one process's channel-layer groups (named by row
    ids that every process's database repeats) would carry the other's events. gw0 keeps the URL's number,
    gwN takes the number + N. Processes a test starts inherit the variable, so they agree."""
    from urllib.parse import urlsplit, urlunsplit

    if not worker.startswith("gw") or not worker[2:].isdigit():
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) + int(worker[2:])
    return urlunsplit(parts._replace(path=f"/{db}"))


if REDIS_URL and os.environ.get("PYTEST_XDIST_WORKER"):
    REDIS_URL = _redis_of_test_process(REDIS_URL, os.environ["PYTEST_XDIST_WORKER"])
# Embedded: one process, no external services. Production: PostgreSQL + Redis.
EMBEDDED = not REDIS_URL

DEBUG = env_bool("DEBUG", default=False)


def _secret_key() -> str:
    if key := os.environ.get("SECRET_KEY"):
        return key
    if not EMBEDDED:
        raise ImproperlyConfigured("SECRET_KEY must be set in production (REDIS_URL is set).")
    # The embedded default keeps a generated key beside its data so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "axes",
    "accounts",
    "messaging",
    "groups",
    "waportal",
]

MIDDLEWARE = [
    # First: it times and counts every answer, the other middleware's included.
    "waportal.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Above the middleware that set cookies, so it sees them all on the way out.
    "waportal.secure_cookies.SecureCookiesOverHttpsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "waportal.storable_text.StorableTextMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.tenancy.CurrentOrganizationMiddleware",
    # axes last: it answers a locked-out login itself
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "waportal.urls"
ASGI_APPLICATION = "waportal.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.tenancy.organization_context",
                "messaging.webhooks.pages.paused_notice",
            ],
        },
    },
]


def _database(url: str) -> dict:
    """The DATABASE_URL database, with a bounded number of connections per process.

    Each process (web, session worker, celery worker) holds at most DB_POOL_SIZE connections to PostgreSQL, in
    Django's psycopg pool; a request takes one for its duration and gives it back. Without the pool
    (DB_POOL_SIZE=0) every thread keeps a connection of its own for DB_CONN_MAX_AGE seconds: the web tier's
    threads come and go with requests, and at 8 concurrent clients it held ~100 connections, PostgreSQL's
    default limit. The README says how to size them: the sum over all processes must stay below
    PostgreSQL's max_connections.
    """
    database = dj_database_url.parse(url)
    pool_size = int(os.environ.get("DB_POOL_SIZE", "8"))
    if database["ENGINE"] == "django.db.backends.postgresql" and pool_size > 0:
        database["CONN_MAX_AGE"] = 0  # (the pool requires it: a connection goes back to it when closed)
        database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": pool_size,
            # How long a request waits for a free connection before it is answered 503 (Retry-After).
            "timeout": float(os.environ.get("DB_POOL_TIMEOUT", "10")),
            "max_idle": 60,
        }
    else:
        database["CONN_MAX_AGE"] = float(os.environ.get("DB_CONN_MAX_AGE", "0"))
    return database


DATABASES = {
    "default": _database(DATABASE_URL)
    if DATABASE_URL
    else {
        "ENGINE": "waportal.sqlite",  # Django's, with one writer at a time, in turn, across processes
        "NAME": DATA_DIR / "waportal.sqlite3",
        # WAL (reads never wait for the writer) and IMMEDIATE transactions (a transaction that writes never
        # upgrades a read). Writers wait at waportal.sqlite's lock, without a time limit; SQLite's busy timeout
        # only guards connections that bypass it (the sqlite3 shell).
        "OPTIONS": {
            "timeout": float(os.environ.get("SQLITE_BUSY_TIMEOUT", "20")),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Login throttling (django-axes): lock a user+address pair after repeated failures.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_USERNAME_FORM_FIELD = "username"
# "Forgot your password?" throttling: at most this many mails per address, and requests per client address, within
# the window (counted whether or not the address has an account, so the limit tells nobody who has one).
PASSWORD_RESET_LIMIT_PER_ADDRESS = int(os.environ.get("PASSWORD_RESET_LIMIT_PER_ADDRESS", "3"))
PASSWORD_RESET_LIMIT_PER_IP = int(os.environ.get("PASSWORD_RESET_LIMIT_PER_IP", "10"))
PASSWORD_RESET_WINDOW_MINUTES = float(os.environ.get("PASSWORD_RESET_WINDOW_MINUTES", "15"))

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("tr", _("Turkish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"
# Media files: under MEDIA_ROOT, or in an S3-compatible bucket (s3://key:secret@host/bucket?region=...).
MEDIA_STORAGE_URL = os.environ.get("MEDIA_STORAGE_URL", "")
STORAGES = media_storage.storages(MEDIA_STORAGE_URL)

# Email, for invitations (Django 6.1's MAILERS). SMTP_URL is smtp://user:password@host:587 (STARTTLS unless
# ?tls=0) or smtps://user:password@host:465; without it mail goes to the console (the process's log), and
# the organization page shows each invitation's link to pass on by hand.
SMTP_URL = os.environ.get("SMTP_URL", "")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "waportal <noreply@localhost>")
if SMTP_URL:
    from urllib.parse import parse_qs, unquote, urlsplit

    _smtp = urlsplit(SMTP_URL)
    if _smtp.scheme not in ("smtp", "smtps") or not _smtp.hostname:
        raise ImproperlyConfigured(
            "SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465"
        )
    _tls = parse_qs(_smtp.query).get("tls", ["1"])[0] not in ("0", "false", "no")
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": _smtp.hostname,
                "port": _smtp.port or (465 if _smtp.scheme == "smtps" else 587),
                "username": unquote(_smtp.username or ""),
                "password": unquote(_smtp.password or ""),
                "use_ssl": _smtp.scheme == "smtps",
                "use_tls": _smtp.scheme == "smtp" and _tls,
                "timeout": 10,
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}

FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024


def _channel_layer_host(url: str) -> dict:
    """The Redis connection of the channel layer, made to ride out a Redis restart.

    - socket_timeout above channels_redis's blocking pop (5 s): redis-py's default read timeout is also 5 s, so
      an idle receive raised redis.exceptions.TimeoutError (a traceback in every idle worker, every few seconds,
      and a command waiting for its answer failed after 5 s instead of WA_COMMAND_TIMEOUT);
    - a short connect timeout: with Redis down, a request is told so at once (it answers `queued` or 503);
    - one quick retry on a connection error and a health check of idle connections: after Redis comes back,
      the pooled connections that died with it are replaced instead of failing the next command.
    """
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    return {
        "address": url,
        "socket_timeout": 15,
        "socket_connect_timeout": float(os.environ.get("REDIS_CONNECT_TIMEOUT", "2")),
        "health_check_interval": 10,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    }


# Channels: in-memory in the one embedded process, Redis between production processes.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_channel_layer_host(REDIS_URL)], "capacity": 1000, "expiry": 60},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }

# WhatsApp
WA_BACKEND = os.environ.get("WA_BACKEND", "neonize")
if WA_BACKEND not in {"neonize", "sandbox"}:
    raise ImproperlyConfigured(f"WA_BACKEND must be 'neonize' or 'sandbox', not {WA_BACKEND!r}")
WA_SESSION_DIR = DATA_DIR / "sessions"
# /metrics (Prometheus) answers only a scraper sending this as a Bearer token; unset: no /metrics at all (404).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

WA_LEASE_SECONDS = float(os.environ.get("WA_LEASE_SECONDS", "15"))
WA_COMMAND_TIMEOUT = float(os.environ.get("WA_COMMAND_TIMEOUT", "20"))
# How long "link a number" waits for the first QR code; how many numbers one session worker holds (0: any).
WA_SEND_WAIT_SECONDS = float(os.environ.get("WA_SEND_WAIT_SECONDS", "2"))
WA_QR_WAIT_SECONDS = float(os.environ.get("WA_QR_WAIT_SECONDS", "8"))
WA_MAX_DEVICES_PER_WORKER = int(os.environ.get("WA_MAX_DEVICES_PER_WORKER", "0"))
WA_SANDBOX_SEED = int(os.environ.get("WA_SANDBOX_SEED", "1"))
# How often the simulated network rotates a QR code, and how long its peers take to answer.
WA_SANDBOX_QR_SECONDS = float(os.environ.get("WA_SANDBOX_QR_SECONDS", "20"))
WA_SANDBOX_DELAY = float(os.environ.get("WA_SANDBOX_DELAY", "0.2"))

# Celery: Redis in production; in the embedded default tasks run in-process (no broker to install).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Periodic work: `celery -A waportal beat` (or `worker -B`) in production; the embedded task worker runs it too.
CELERY_BEAT_SCHEDULE = {
    # Live "disconnected" for numbers whose session worker died, when no other worker takes them over.
    "announce-unheld-devices": {"task": "messaging.announce_unheld_devices", "schedule": WA_LEASE_SECONDS},
    # Also frees a killed worker's claim (held WEBHOOK_TIMEOUT_SECONDS + 5) soon after it lapses.
    "webhooks-requeue-stalled": {"task": "messaging.requeue_stalled_webhooks", "schedule": 10.0},
    "cleanup-expired-data": {"task": "messaging.cleanup_expired", "schedule": 3600.0},
    # Media files past MEDIA_RETENTION_DAYS, audit events past AUDIT_RETENTION_DAYS (messaging.retention).
    "apply-retention": {"task": "messaging.apply_retention", "schedule": 3600.0},
}
# Retention in days (0: keep forever): stored media files (the message stays, marked "file expired"), audit events.
MEDIA_RETENTION_DAYS = float(os.environ.get("MEDIA_RETENTION_DAYS", "0"))
AUDIT_RETENTION_DAYS = float(os.environ.get("AUDIT_RETENTION_DAYS", "0"))

# Media a send names by URL: how long to wait for it (sizes per kind: API_MEDIA_MAX_BYTES, a dict by kind).
API_MEDIA_FETCH_TIMEOUT = float(os.environ.get("API_MEDIA_FETCH_TIMEOUT", "20"))

# Webhook targets on private, loopback or link-local addresses (self-hosted receivers).
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# Delivery: per-attempt timeout, retries with exponential backoff (base, cap); an endpoint whose every attempt
# failed for WEBHOOK_PAUSE_AFTER_HOURS is paused (its events held) and probed every WEBHOOK_PROBE_SECONDS.
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10"))
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "10"))
WEBHOOK_RETRY_BASE_SECONDS = float(os.environ.get("WEBHOOK_RETRY_BASE_SECONDS", "15"))
WEBHOOK_RETRY_MAX_SECONDS = float(os.environ.get("WEBHOOK_RETRY_MAX_SECONDS", "3600"))
WEBHOOK_PAUSE_AFTER_HOURS = float(os.environ.get("WEBHOOK_PAUSE_AFTER_HOURS", "1"))
WEBHOOK_PROBE_SECONDS = float(os.environ.get("WEBHOOK_PROBE_SECONDS", "60"))
WEBHOOK_LOG_RETENTION_DAYS = int(os.environ.get("WEBHOOK_LOG_RETENTION_DAYS", "30"))
# Threads of the in-process task worker (embedded default only).
# A dedicated Celery queue for webhook deliveries (workers started with -Q); unset: Celery's default queue.
WEBHOOK_TASK_QUEUE = os.environ.get("WEBHOOK_TASK_QUEUE") or None
# Deliveries of one queue (endpoint, number) claimed at once and sent in order; queues of one endpoint in flight
# at once (a slow receiver holds that many task workers, never all: keep the worker's concurrency above it).
WEBHOOK_CLAIM_BATCH = int(os.environ.get("WEBHOOK_CLAIM_BATCH", "20"))
WEBHOOK_ENDPOINT_CONCURRENCY = int(os.environ.get("WEBHOOK_ENDPOINT_CONCURRENCY", "2"))
EMBEDDED_TASK_CONCURRENCY = int(os.environ.get("EMBEDDED_TASK_CONCURRENCY", "4"))

# How long a sign-in lasts (seconds since it began, as Django counts); two weeks unless set.
_session_age = os.environ.get("SESSION_COOKIE_AGE", "").strip() or str(14 * 24 * 3600)
if not _session_age.isdigit() or int(_session_age) <= 0:
    raise ImproperlyConfigured(
        f"SESSION_COOKIE_AGE must be a positive number of seconds, not {_session_age!r}"
    )
SESSION_COOKIE_AGE = int(_session_age)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads it to send X-CSRFToken
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"


def _proxy_ssl_header():
    """The header a TLS-terminating proxy sets to `https` (it must also strip it from what clients send):
    SECURE_PROXY_SSL_HEADER names it; `none` trusts no header. In production X-Forwarded-Proto unless set."""
    name = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
    if not name:
        name = "" if EMBEDDED or DEBUG else "X-Forwarded-Proto"
    if not name or name.lower() == "none":
        return None
    if not all(c.isalnum() or c == "-" for c in name):
        raise ImproperlyConfigured(f"SECURE_PROXY_SSL_HEADER must be a header name, not {name!r}")
    return ("HTTP_" + name.upper().replace("-", "_"), "https")


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
# Every page: scripts, styles and connections from our own origin only; no inline script, style attribute or
# on* handler (the templates have none; a script that must be inline takes {{ csp_nonce }}), no eval (htmx runs
# with allowEval off). Should markup ever be injected, it runs nothing. Pictures may also be data: URLs (the
# sandbox's avatars) or WhatsApp's profile pictures. The API docs page loosens it for Swagger UI
# (waportal/api.py); a media download answers with its own sandbox policy (messaging/services/downloads.py).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:", "https://*.whatsapp.net"],
    "media-src": [CSP.SELF],
    "connect-src": [CSP.SELF],  # 'self' covers ws:/wss: to this host
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if not DEBUG and not EMBEDDED:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # One INFO line per webhook request is noise; failures are logged by the delivery task.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
