"""pytest-django on pytest-isolate's per-worker database (see docs/plugins.rst)."""

import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(isolate_db):
    # Django's test database is this worker's database: created (or cloned from
    # --isolate-db-template) by pytest-isolate, so Django only migrates it and keeps it, and
    # pytest-isolate drops it at the end.
    from django.conf import settings

    settings.DATABASES["default"]["TEST"]["NAME"] = isolate_db.name


@pytest.fixture(scope="session")
def django_db_keepdb():
    return True
