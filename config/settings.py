"""Settings, read from the environment in one place.

With no environment at all the project runs embedded: SQLite, Celery tasks executed
in-process, media on the local disk, DEBUG on. Setting DJANGO_ENV=production turns DEBUG
off by default and refuses to start without DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(
        f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}"
    )
IS_PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.bool("DJANGO_DEBUG", default=not IS_PRODUCTION)

if IS_PRODUCTION:
    # Fail closed: production never runs with a made-up secret or an open host list.
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
    if len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set to at least 32 characters when DJANGO_ENV=production"
        )
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when DJANGO_ENV=production")
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="development-only-insecure-key-do-not-deploy")
    ALLOWED_HOSTS = env.list(
        "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
    )

CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Keyed hash for crowd-platform ids; separate from SECRET_KEY so rotating one
# does not re-pseudonymize every participant.
PSEUDONYM_KEY = env.str("EXPLAINSTUDY_PSEUDONYM_KEY", default=SECRET_KEY)
# Key material for secrets stored at rest (researchers' Prolific API tokens, encrypted with
# Fernet under a key derived from it); SECRET_KEY when unset. Changing it makes the stored
# tokens unreadable: researchers enter them again.
EXPLAINSTUDY_SECRETS_KEY = env.str("EXPLAINSTUDY_SECRETS_KEY", default="") or SECRET_KEY

# Prolific's REST API (approving and rejecting submissions); tests point it at a stand-in.
EXPLAINSTUDY_PROLIFIC_API_URL = env.str(
    "EXPLAINSTUDY_PROLIFIC_API_URL", default="https://api.prolific.com"
)
EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S = env.float("EXPLAINSTUDY_PROLIFIC_API_TIMEOUT_S", default=20.0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "explain_engine",
    "study",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "config.security.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# Keep each web process's connection between requests (opening one costs PostgreSQL a process
# fork per request); a connection that died meanwhile is noticed and replaced at the next one.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: the browser tests' live server answers parallel requests, each
    # thread on its own connection, which an in-memory test database cannot give.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}
    # The embedded mode has the web server and the precompute writing one file at once.
    # WAL lets readers go on while a writer commits; IMMEDIATE takes the write lock at BEGIN,
    # so a transaction that reads and then writes waits its turn (busy timeout) instead of
    # failing at once with "database is locked" when another process wrote in between.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("EXPLAINSTUDY_SQLITE_TIMEOUT", default=30),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "var" / "static")

# Media holds stimuli and explanation artifacts under opaque names. It is never served
# by URL path; participant images go through a view that checks who may see them.
MEDIA_ROOT = env.path("EXPLAINSTUDY_MEDIA_ROOT", default=BASE_DIR / "var" / "media")
MEDIA_URL = "/media/"

# Files go through Django's storage API: the local disk (MEDIA_ROOT) by default, an
# S3-compatible bucket (AWS S3, MinIO, Ceph...) when AWS_STORAGE_BUCKET_NAME is set.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            # Private objects: nothing is public by URL, and names are never reused.
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
# Workers need the checkpoint as a local file; from object storage it is copied here once.
EXPLAINSTUDY_CHECKPOINT_CACHE = env.path(
    "EXPLAINSTUDY_CHECKPOINT_CACHE", default=BASE_DIR / "var" / "checkpoint-cache"
)
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

LOGIN_URL = "/researcher/login/"
LOGIN_REDIRECT_URL = "/researcher/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=IS_PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# HTTPS only in production: redirect, and tell browsers to remember it (HSTS).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=IS_PRODUCTION)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=IS_PRODUCTION)
# The preload flag only matters once someone submits the domain to the browsers list.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=IS_PRODUCTION)
# Behind a TLS-terminating proxy: how many proxies set X-Forwarded-For / -Proto honestly.
EXPLAINSTUDY_TRUSTED_PROXIES = env.int("EXPLAINSTUDY_TRUSTED_PROXIES", default=0)
if EXPLAINSTUDY_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# The cache holds rate-limit counters; several web processes must share it (Redis).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# Study entries per client address per minute; a lab behind one NAT address needs headroom.
EXPLAINSTUDY_ENTRY_RATE_LIMIT = env.int("EXPLAINSTUDY_ENTRY_RATE_LIMIT", default=60)

# Celery: with no broker configured, tasks run in-process (the embedded default).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None) or None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "web"
# The periodic housekeeping is light: web workers run it, the GPU workers keep to the engine.
CELERY_TASK_ROUTES = {
    "explain_engine.tasks.precompute_jobs_send_waiting": {"queue": "web"},
    "explain_engine.tasks.orphan_files_remove_old": {"queue": "web"},
    "explain_engine.tasks.*": {"queue": "engine"},
}
# Run by `celery -A config beat` (one process): jobs made while the broker was down are sent
# once it answers; files a killed worker left unreferenced are removed.
CELERY_BEAT_SCHEDULE = {
    "precompute-jobs-send-waiting": {
        "task": "explain_engine.tasks.precompute_jobs_send_waiting",
        "schedule": 60.0,
    },
    "orphan-files-remove": {
        "task": "explain_engine.tasks.orphan_files_remove_old",
        "schedule": 6 * 3600.0,
    },
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers a message that was taken but not acknowledged (its worker died) after
# this many seconds; it must exceed the longest engine task, or a live task is run twice
# (harmless: only the latest claim stores, but the work is wasted).
BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT}

# The precompute pipeline. Images per engine task (a job may declare its own):
EXPLAINSTUDY_BATCH_SIZE = env.int("EXPLAINSTUDY_BATCH_SIZE", default=8)
# A running explanation claimed longer ago than this is presumed abandoned, and a re-run
# of its job may take it over (a redelivered task takes over at once).
EXPLAINSTUDY_CLAIM_LEASE_SECONDS = env.int(
    "EXPLAINSTUDY_CLAIM_LEASE_SECONDS", default=BROKER_VISIBILITY_TIMEOUT
)
# Lost database connections: retried this many times, waiting 2, 4, 8... times this.
EXPLAINSTUDY_TASK_MAX_RETRIES = env.int("EXPLAINSTUDY_TASK_MAX_RETRIES", default=5)
EXPLAINSTUDY_RETRY_BACKOFF_SECONDS = env.float("EXPLAINSTUDY_RETRY_BACKOFF_SECONDS", default=2.0)

# Where the engine computes: "auto" = CUDA when present, else CPU.
EXPLAINSTUDY_DEVICE = env.str("EXPLAINSTUDY_DEVICE", default="auto")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}
