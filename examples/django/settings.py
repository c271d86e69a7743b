"""Settings of the example project: one app, ``shop``, on PostgreSQL.

The server comes from ``PYTEST_ISOLATE_DB_URL``, the same variable pytest-isolate reads for
``--isolate-db-url``, so one setting points both at one server.
"""

import os
from urllib.parse import unquote, urlsplit

_url = urlsplit(os.environ.get("PYTEST_ISOLATE_DB_URL", "postgresql://postgres@127.0.0.1/postgres"))

SECRET_KEY = "example-only"
USE_TZ = True
INSTALLED_APPS = ["shop"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(_url.path.lstrip("/")) or "postgres",
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
    }
}
