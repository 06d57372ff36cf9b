"""A failed unit's journal, as a site's Django and gunicorn write it, read as the change that fixes it."""

from __future__ import annotations

from djdeploy.deploy import unit_failures

MIGRATE = "django-migrate-shop.service"
GUNICORN = "gunicorn-shop.service"


def test_an_origin_without_its_scheme_says_the_origin_to_write() -> None:
    journal = (
        "SystemCheckError: System check identified some issues:\n"
        "ERRORS:\n"
        "?: (4_0.E001) As of Django 4.0, the values in the CSRF_TRUSTED_ORIGINS setting must start with a "
        "scheme (usually http:// or https://) but found shop.lab. See the release notes for details.\n"
        "django-migrate-shop.service: Main process exited, code=exited, status=1/FAILURE"
    )
    assert unit_failures.cause(MIGRATE, journal) == (
        "CSRF_TRUSTED_ORIGINS in the site's settings holds 'shop.lab' without its scheme, which Django "
        "refuses since 4.0 (system check 4_0.E001, run before the migrations): write 'https://shop.lab' "
        "(http:// for a site on port 80)."
    )


def test_other_system_check_errors_are_listed() -> None:
    journal = (
        "SystemCheckError: System check identified some issues:\n"
        "ERRORS:\n"
        "shop.Order.total: (fields.E130) DecimalFields must define a 'decimal_places' attribute.\n"
    )
    said = unit_failures.cause(MIGRATE, journal)
    assert said is not None
    assert "shop.Order.total: (fields.E130) DecimalFields must define a 'decimal_places' attribute." in said


def test_a_variable_the_settings_need_is_named() -> None:
    journal = (
        "Traceback (most recent call last):\n"
        '  File "/nix/store/x/app/config/settings/base.py", line 12, in <module>\n'
        "django.core.exceptions.ImproperlyConfigured: Set the DJANGO_ADMIN_URL environment variable\n"
    )
    said = unit_failures.cause(MIGRATE, journal)
    assert said is not None
    assert said.startswith("the site's settings need the environment variable DJANGO_ADMIN_URL: set it in")


def test_a_wsgi_module_gunicorn_cannot_import_is_named() -> None:
    journal = (
        "[ERROR] Exception in worker process\n"
        "Traceback (most recent call last):\n"
        "ModuleNotFoundError: No module named 'config.wsgii'\n"
    )
    said = unit_failures.cause(GUNICORN, journal)
    assert said is not None
    assert said.startswith(
        "gunicorn could not import the WSGI application: there is no module 'config.wsgii'"
    )
    assert unit_failures.cause(GUNICORN, "Failed to find attribute 'application' in 'config.wsgi'.") == (
        "gunicorn imported the WSGI module config.wsgi but found no 'application' in it: the module that "
        "wsgiModule names must define it, as `application = get_wsgi_application()`."
    )


def test_settings_that_raise_at_import_give_the_exception() -> None:
    journal = (
        "Traceback (most recent call last):\n"
        '  File "/nix/store/x/app/config/settings/prod.py", line 3, in <module>\n'
        "    DEBUG = Flase\n"
        "NameError: name 'Flase' is not defined\n"
    )
    assert unit_failures.cause(MIGRATE, journal) == (
        "it raised NameError: name 'Flase' is not defined (the traceback's last lines are below)."
    )


def test_a_journal_of_nothing_known_has_no_cause() -> None:
    assert unit_failures.cause(GUNICORN, "Started gunicorn-shop.service.\nStopped.") is None


def test_a_key_error_of_a_view_is_no_variable() -> None:
    journal = "Traceback (most recent call last):\nKeyError: 'basket'\n"
    assert unit_failures.cause(GUNICORN, journal) == (
        "it raised KeyError: 'basket' (the traceback's last lines are below)."
    )
