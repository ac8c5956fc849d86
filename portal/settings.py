"""The one settings module of Steward (STYLE.md C7).

Production behaviour is switched by environment variables, never by another settings file.
With no variables at all, Steward runs on the *embedded default*: an SQLite file, an SQLite
Celery broker and a file cache under the data folder, so that a fresh checkout runs with no server
to install. DATABASE_URL (PostgreSQL) and REDIS_URL (broker and cache) switch to production
services. `.env.example` lists every variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.platform.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    persisted_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("STEWARD_DATA_DIR", str(BASE_DIR / "var"))).resolve()
ARTIFACT_DIR = Path(env_str("ARTIFACT_DIR", str(DATA_DIR / "artifacts"))).resolve()

DEBUG = env_bool("DEBUG", default=False)
DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
# The embedded default: no DATABASE_URL means a single-machine install, where generated secrets
# may be kept under the data folder. With a production database, secrets must be given.
EMBEDDED = not DATABASE_URL

_secret = env_secret("SECRET_KEY")
if not _secret:
    if not EMBEDDED:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) is required when DATABASE_URL is set"
        )
    _secret = persisted_secret(DATA_DIR / "secret_key")
SECRET_KEY = _secret

# The audit log's Ed25519 checkpoint key (PEM). Like SECRET_KEY: required with a production
# database, generated once under the data folder for the embedded default.
_audit_key = env_secret("AUDIT_SIGNING_KEY")
if not _audit_key:
    if not EMBEDDED:
        raise ImproperlyConfigured(
            "AUDIT_SIGNING_KEY (or AUDIT_SIGNING_KEY_FILE), an Ed25519 private key in PEM, is "
            "required when DATABASE_URL is set (openssl genpkey -algorithm ed25519)"
        )
    _key_path = DATA_DIR / "audit_signing_key.pem"
    if not _key_path.exists():
        from audit.log.signing import generate_private_pem

        persisted_secret(_key_path, content=generate_private_pem())
    _audit_key = _key_path.read_text()
AUDIT_SIGNING_KEY = _audit_key
AUDIT_CHECKPOINT_SECONDS = env_int("AUDIT_CHECKPOINT_SECONDS", default=60, minimum=1)
# Every checkpoint is also appended here (audit/log/witness.py): put it where the database's owner
# cannot rewrite it. Empty: no witness (the embedded default keeps one in its data folder).
AUDIT_WITNESS_FILE = env_str("AUDIT_WITNESS_FILE", str(DATA_DIR / "audit-witness.jsonl") if EMBEDDED else "")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "audit.log",
    "portal",
    "portal.accounts",
    "inference",
    "audit.fairness",
    "audit.exports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.RequestIdMiddleware",
    "portal.platform.outages.OutageMiddleware",
    "portal.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "portal.accounts.middleware.CurrentOrganizationMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

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
                "portal.accounts.context_processors.organization",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", default=60, minimum=0)
        )
    }
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...)")
    # Django's own queries bind on the client and are never prepared; the few statements run on a
    # server-binding cursor (the audit log's append) are, after 5 runs on a connection, which
    # halves their cost. DB_PREPARED_STATEMENTS=false behind a pooler that cannot keep prepared
    # statements (PgBouncer in transaction mode before 1.21, or without max_prepared_statements).
    if env_bool("DB_PREPARED_STATEMENTS", default=True):
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
    # The ASGI web server runs each synchronous view in a thread of its own, which would open a
    # connection per request and leave it behind: its connections come from psycopg's pool instead
    # (`serve` sets DB_POOL for the web process; workers keep one persistent connection per thread).
    # A request waits for a free connection up to DB_POOL_TIMEOUT seconds.
    if env_bool("DB_POOL", default=False):
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 2, "max_size": env_int("DB_POOL_MAX_SIZE", default=40, minimum=2),
            "timeout": float(env_int("DB_POOL_TIMEOUT", default=30, minimum=1)),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH") or str(DATA_DIR / "steward.sqlite3"),
            "OPTIONS": {
                # IMMEDIATE: a writer takes the lock when its transaction starts, so two writers
                # never deadlock upgrading read locks (the audit log sequences entries this way).
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(DATA_DIR / "test-steward.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- cache (login lock-outs, rate limits) -------------------------------------------------
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "portal.platform.cache.SharedClientRedisCache",  # one client per pool (portal/platform/cache.py)
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "steward"),
        }
    }
else:
    # Shared by the web processes and the worker of the embedded default (local memory is not).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "steward"),
        }
    }

# --- Celery -------------------------------------------------------------------------------
# stewardsqla: kombu's SQLAlchemy transport polling every 50 ms (portal/platform/broker.py).
CELERY_BROKER_URL = REDIS_URL or f"stewardsqla+sqlite:///{DATA_DIR / 'broker.sqlite3'}"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    {} if REDIS_URL else {"connect_args": {"timeout": 30}}
)
# No result backend: a caller that waits for a task names a reply key (portal/platform/replies.py), and
# everything else a task produces is stored in the database by the task itself.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the thread's database connection before and after every task
# (a new PostgreSQL backend per prediction, ~13% of a task's time). Its recycling is turned off
# here; portal/celery.py closes connections as Django's request cycle does instead: when older
# than DB_CONN_MAX_AGE or no longer usable.
CELERY_DB_REUSE_MAX = 10**12
CELERY_BEAT_SCHEDULE = {
    "audit-checkpoint": {
        "task": "audit.log.tasks.checkpoint_create_task",
        "schedule": float(AUDIT_CHECKPOINT_SECONDS),
    },
    "audit-verify": {"task": "audit.log.tasks.log_verify_task", "schedule": 3600.0},
    "jobs-requeue-stuck": {"task": "portal.tasks.job_sweeps_task", "schedule": 60.0},
    "predictions-fail-stuck": {"task": "inference.tasks.prediction_fail_stuck_task", "schedule": 60.0},
    "prediction-replies-sweep": {"task": "inference.tasks.prediction_replies_sweep_task", "schedule": 60.0},
    "completions-fail-abandoned": {"task": "inference.tasks.completion_fail_abandoned_task", "schedule": 60.0},
}
# Background jobs whose worker went away are queued again, each minute and as a worker starts:
# every kind registered with portal.jobs is swept (jobs_requeue_stale).
CELERY_TASK_ROUTES = {"audit.*": {"queue": "default"}}
# Eager mode hides what a real worker does (serialisation, transactions, redelivery): never on.
CELERY_TASK_ALWAYS_EAGER = False

# --- auth, sessions, security -------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", default=5, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", default=900, minimum=1)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", default=8 * 3600, minimum=60)
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Secure by default: secure cookies, HSTS and redirects to https, as behind TLS. A site served over
# plain HTTP says so explicitly with HTTPS=false, as the Makefile does for `make run` and `make
# test` on 127.0.0.1; DEBUG implies it.
HTTPS = env_bool("HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- request limits -----------------------------------------------------------------------
API_MAX_JSON_BYTES = env_int("API_MAX_JSON_BYTES", default=1024 * 1024, minimum=1024)
API_MAX_UPLOAD_BYTES = env_int("API_MAX_UPLOAD_BYTES", default=512 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_JSON_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
API_TOKEN_DEFAULT_RATE_PER_MINUTE = env_int("API_TOKEN_RATE_PER_MINUTE", default=600, minimum=1)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", default=365, minimum=1)
# the highest rate a member may give a token; an organisation may set a lower one
API_TOKEN_MAX_RATE_PER_MINUTE = env_int("API_TOKEN_MAX_RATE_PER_MINUTE", default=6000, minimum=1)

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # `?format=` is ours (downloads choose JSON or CSV), not a renderer switch.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["portal.accounts.permissions.HasCapability"],
    "DEFAULT_THROTTLE_CLASSES": ["portal.accounts.throttling.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "portal.platform.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "portal.web.openapi.PortalAutoSchema",
    "EXCEPTION_HANDLER": "portal.platform.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Steward API",
    "DESCRIPTION": (
        "Models as a service with governance built in. Authenticate with "
        "`Authorization: Bearer <token>`; every error has the shape "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # a guardrail policy's input and output actions share one set of choices: one name for it
    "ENUM_NAME_OVERRIDES": {"GuardActionEnum": "inference.models.GuardAction"},
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "portal.web.openapi.error_responses"],
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- models and serving -------------------------------------------------------------------
ARTIFACT_CACHE_DIR = Path(env_str("ARTIFACT_CACHE_DIR", str(DATA_DIR / "model-cache"))).resolve()
BUILD_CACHE_DIR = Path(env_str("BUILD_CACHE_DIR", str(BASE_DIR / "var" / "build-cache"))).resolve()
MODEL_MAX_ARCHIVE_BYTES = env_int("MODEL_MAX_ARCHIVE_BYTES", default=500 * 2**20, minimum=1024)
MODEL_MAX_UNPACKED_BYTES = env_int("MODEL_MAX_UNPACKED_BYTES", default=2 * 2**30, minimum=1024)
MODEL_CACHE_MAX_MB = env_int("MODEL_CACHE_MAX_MB", default=2048, minimum=16)
# An upload is checked (loaded, run on an example) on a worker, in a child process with these
# limits (inference/ml/sandbox.py); the registering request waits MODEL_CHECK_WAIT_SECONDS for
# the verdict, then answers 202 with the check's URL.
MODEL_CHECK_SECONDS = env_float("MODEL_CHECK_SECONDS", default=180.0, minimum=1.0)
MODEL_CHECK_MEMORY_MB = env_int("MODEL_CHECK_MEMORY_MB", default=6144, minimum=512)
MODEL_CHECK_WAIT_SECONDS = env_float("MODEL_CHECK_WAIT_SECONDS", default=120.0, minimum=0.0)
PREDICT_MAX_ROWS = env_int("PREDICT_MAX_ROWS", default=64, minimum=1)
PREDICT_TIMEOUT_SECONDS = env_float("PREDICT_TIMEOUT_SECONDS", default=30.0, minimum=0.1)
EXPLAIN_WAIT_SECONDS = env_float("EXPLAIN_WAIT_SECONDS", default=60.0, minimum=0.0)  # then 202 and poll
EXPLAIN_DEFAULT_EVALS = env_int("EXPLAIN_DEFAULT_EVALS", default=500, minimum=16)
EXPLAIN_MAX_TOKENS = env_int("EXPLAIN_MAX_TOKENS", default=128, minimum=8)
# Private fine-tuning. Secure mode (noise and sampling from a cryptographically strong generator,
# inference/ml/secure_random.py) is on in production; the embedded default runs without it, as
# Opacus's own examples do.
DP_SECURE_MODE = env_bool("DP_SECURE_MODE", default=not EMBEDDED)
FINETUNE_MAX_BYTES = env_int("FINETUNE_MAX_BYTES", default=50 * 2**20, minimum=1024)
FINETUNE_MAX_ROWS = env_int("FINETUNE_MAX_ROWS", default=200_000, minimum=20)
FINETUNE_CHECKPOINT_SECONDS = env_float("FINETUNE_CHECKPOINT_SECONDS", default=60.0, minimum=0.0)
# Global explanations: how many rows of an evaluation sample are explained, at most.
GLOBAL_EXPLAIN_MAX_ROWS = env_int("GLOBAL_EXPLAIN_MAX_ROWS", default=1000, minimum=1)
BATCH_MAX_SIZE = env_int("BATCH_MAX_SIZE", default=32, minimum=1)
# Measured (bench-serving): 5 ms of waiting for company doubles c32 throughput over 0 ms, for
# a few ms more at concurrency 1.
BATCH_MAX_WAIT_MS = env_float("BATCH_MAX_WAIT_MS", default=5.0, minimum=0.0)
JOB_MAX_ROWS = env_int("JOB_MAX_ROWS", default=100_000, minimum=1)

# --- generative models (the OpenAI-compatible API under /v1/) ----------------------------------
# torch threads of the generation worker process: one decodes faster than two on 2 shared cores
# (../shared/datasets/README.md's measure; bench-llm), since the web and the database need the other.
GENERATION_THREADS = env_int("GENERATION_THREADS", default=1, minimum=1)
GENERATION_MAX_TOKENS = env_int("GENERATION_MAX_TOKENS", default=512, minimum=1)  # per choice, at most
GENERATION_DEFAULT_MAX_TOKENS = env_int("GENERATION_DEFAULT_MAX_TOKENS", default=128, minimum=1)
GENERATION_MAX_N = env_int("GENERATION_MAX_N", default=8, minimum=1)
# a model's key-value cache holds this many tokens of its running requests (about 0.7 GB for SmolLM2-135M)
GENERATION_CACHE_TOKENS = env_int("GENERATION_CACHE_TOKENS", default=16384, minimum=256)
# the whole generation (a first load of the model included) ends with an error past this
GENERATION_TIMEOUT_SECONDS = env_float("GENERATION_TIMEOUT_SECONDS", default=300.0, minimum=1.0)
GENERATION_FIRST_TOKEN_SECONDS = env_float("GENERATION_FIRST_TOKEN_SECONDS", default=120.0, minimum=1.0)
# how often a waiting stream asks whether its worker still beats (a dead one is known within ~10 s)
GENERATION_LIVENESS_SECONDS = env_float("GENERATION_LIVENESS_SECONDS", default=2.0, minimum=0.1)
JOB_MAX_BYTES = env_int("JOB_MAX_BYTES", default=50 * 2**20, minimum=1024)
# /v1/moderations: the organisation's model it uses when none is named, and the score that flags a category
MODERATION_MODEL = env_str("MODERATION_MODEL", "moderation") or "moderation"
MODERATION_FLAG_SCORE = env_float("MODERATION_FLAG_SCORE", default=0.5, minimum=0.0)
# The grid's carbon intensity for served work (g CO2e per kWh): set it, or name the country (ISO 3166
# alpha-3, e.g. FRA) whose mix CodeCarbon's data gives; neither: the world average in that data.
CARBON_INTENSITY_G_PER_KWH = env_float("CARBON_INTENSITY_G_PER_KWH", default=0.0, minimum=0.0)
CARBON_GRID_COUNTRY = env_str("CARBON_GRID_COUNTRY", "").upper()

# --- bias reports -------------------------------------------------------------------------
BIAS_MAX_BYTES = env_int("BIAS_MAX_BYTES", default=20 * 2**20, minimum=1024)
BIAS_MAX_ROWS = env_int("BIAS_MAX_ROWS", default=100_000, minimum=10)
BIAS_MAX_TEXT_ROWS = env_int("BIAS_MAX_TEXT_ROWS", default=20_000, minimum=10)  # templates x terms
# held-out rows (classifiers) or texts (generative) a compression is measured on: both models read each
COMPRESSION_MAX_ROWS = env_int("COMPRESSION_MAX_ROWS", default=5_000, minimum=10)
BIAS_MAX_GENERATIONS = env_int("BIAS_MAX_GENERATIONS", default=2_000, minimum=10)  # a probe's completions
BIAS_MAX_PAIRS = env_int("BIAS_MAX_PAIRS", default=5_000, minimum=10)  # a counterfactual pairs report

# --- health -------------------------------------------------------------------------------
HEALTH_WORKER_TIMEOUT = env_float("HEALTH_WORKER_TIMEOUT", default=2.0, minimum=0.1)

# --- static files, i18n -------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "portal" / "static"]
# Model artifacts go through Django's storage API: a local folder by default, an S3-compatible
# bucket (AWS, MinIO, Ceph) when ARTIFACT_S3_BUCKET is set, so that workers on other hosts can
# load them (needs the `s3` extra: django-storages and boto3).
ARTIFACT_S3_BUCKET = env_str("ARTIFACT_S3_BUCKET")
_artifact_storage: dict[str, object] = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ARTIFACT_S3_BUCKET,
            "endpoint_url": env_str("ARTIFACT_S3_ENDPOINT_URL") or None,
            "region_name": env_str("ARTIFACT_S3_REGION") or None,
            "access_key": env_secret("ARTIFACT_S3_ACCESS_KEY"),
            "secret_key": env_secret("ARTIFACT_S3_SECRET_KEY"),
            "default_acl": None,
            "file_overwrite": False,
        },
    }
    if ARTIFACT_S3_BUCKET
    else {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(ARTIFACT_DIR)}}
)
STORAGES = {
    "default": _artifact_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Tests and the embedded default serve whatever collectstatic has not yet hashed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False
LANGUAGE_CODE = "en-gb"
# The languages the portal offers (the top bar's switcher, Accept-Language): both catalogues are complete
# (`manage.py translations_check`, run by CI: every template string marked, every entry translated and none
# fuzzy). STEWARD_LANGUAGES=en-gb offers English alone.
KNOWN_LANGUAGES = {"en-gb": "English", "zh-hans": "简体中文"}
_offered = env_list("STEWARD_LANGUAGES", default=["en-gb", "zh-hans"])
if LANGUAGE_CODE not in _offered or not set(_offered) <= set(KNOWN_LANGUAGES):
    raise ImproperlyConfigured(f"STEWARD_LANGUAGES must list en-gb, and only these: {', '.join(KNOWN_LANGUAGES)}")
LANGUAGES = [(code, KNOWN_LANGUAGES[code]) for code in dict.fromkeys(_offered)]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_SECURE = HTTPS
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["portal.formats"]  # dates per language: portal/formats/__init__.py

# --- logging ------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "steward": {"level": LOG_LEVEL, "propagate": True},
    },
}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
