"""Tests of the Nix side: the shared site definitions (evaluated with builtins only, as the lab does), the
scripts they write (built and run), the NixOS module (evaluated with nixpkgs' lib and stub NixOS options) and
the packaging helpers of the flake.

They need nix-instantiate. The module tests also need nixpkgs' lib as <nixpkgs/lib> (for example
NIX_PATH=nixpkgs=<checkout of nix-community/nixpkgs.lib>); the script tests need nix-build and a writable
store.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
NIX_TESTS = Path(__file__).resolve().parent / "nix"
PURE_CASES = NIX_TESTS / "pure-cases.nix"
MODULE_CASES = NIX_TESTS / "module-cases.nix"
NO_SUBSTITUTERS = ("--option", "substituters", "")
BCRYPT = "$2a$14$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"


def nix_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (the Nix tests need Nix)")
    return path


def run_nix(*arguments: str) -> str:
    result = subprocess.run(arguments, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(arguments)} failed:\n{result.stderr}")
    return result.stdout


def argstrs(**values: str) -> list[str]:
    return [argument for name, value in values.items() for argument in ("--argstr", name, value)]


def evaluate(file: Path, attribute: str | None = None, **arguments: str) -> Any:
    """The JSON value of a Nix file (a function gets `arguments`), or of one of its attributes."""
    command = nix_tool("nix-instantiate")
    selection = [] if attribute is None else ["-A", attribute]
    output = run_nix(
        command,
        "--eval",
        "--strict",
        "--json",
        *NO_SUBSTITUTERS,
        str(file),
        *argstrs(**arguments),
        *selection,
    )
    return json.loads(output)


@functools.cache
def pure(attribute: str) -> Any:
    return evaluate(PURE_CASES, attribute)


@functools.cache
def nixpkgs_lib_missing() -> str | None:
    command = nix_tool("nix-instantiate")
    found = subprocess.run(
        [command, "--find-file", "nixpkgs/lib"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        return (
            "the NixOS module tests need nixpkgs' lib as <nixpkgs/lib>: "
            "set NIX_PATH=nixpkgs=<checkout of nix-community/nixpkgs.lib>"
        )
    return None


@functools.cache
def module(case: str) -> Any:
    reason = nixpkgs_lib_missing()
    if reason is not None:
        pytest.skip(reason)
    return evaluate(MODULE_CASES, case)


def block(config: str, address: str) -> str:
    """The Caddyfile block of one address (top level blocks end with a "}" line)."""
    match = re.search(rf"^{re.escape(address)} \{{\n(.*?)^\}}\n", config, re.MULTILINE | re.DOTALL)
    assert match is not None, f"no block for {address} in:\n{config}"
    return match.group(1)


# Shared definitions, builtins only -----------------------------------------------------------------------


def test_every_nix_file_parses() -> None:
    command = nix_tool("nix-instantiate")
    files = sorted(path for path in REPO.rglob("*.nix") if ".git" not in path.parts)
    assert REPO / "flake.nix" in files
    for path in files:
        run_nix(command, "--parse", str(path))


def test_defaults_are_those_of_the_spec() -> None:
    assert pure("defaults") == {
        "aliases": [],
        "port": 443,
        "auth": None,
        "mediaUrl": "/media/",
        "staticUrl": "/static/",
        "nbWorkers": 1,
        "server": "gunicorn",
        "workerClass": "gevent",
        "extraEnv": {},
        "extraEnvFiles": [],
        "disableACME": False,
        "user": "mysite",
        "group": "mysite",
        "databaseUrl": None,
        "baseDir": "/var/www/mysite",
        "healthCheckPath": "/",
        "scheduled": {},
    }


def test_environment_is_the_one_sites_rely_on() -> None:
    site = pure("minimal")
    assert site["environment"] == {
        "DJANGO_SETTINGS_MODULE": "mysite.settings",
        "DATABASE_URL": "postgresql:///mysite",
        "ALLOWED_HOSTS": "mysite.test",
        "MEDIA_ROOT": "/var/www/mysite/media",
        "MEDIA_URL": "/media/",
        "STATIC_URL": "/static/",
        "STATIC_ROOT": "/nix/store/00000000000000000000000000000000-mysite-static",
        "PGHOST": "/run/postgresql",
        "PYTHONSAFEPATH": "1",
    }
    assert site["secretKeyFile"] == "/var/www/mysite/secret_key"
    assert site["database"] == {"name": "mysite", "owner": "mysite"}


def test_env_wrapper_exports_then_sources_secrets_then_execs() -> None:
    wrapper = pure("full")["envWrapper"]
    lines = wrapper.splitlines()
    assert "umask 0027" in lines
    assert "export QUOTED='it'\\''s \"quoted\" $HOME'" in lines
    assert "export DATABASE_URL='postgresql:///alice'" in lines
    sourced = lines.index("set -a")
    assert lines[sourced + 1 : sourced + 4] == [
        ". '/var/www/shop/secret_key'",
        ". '/run/secrets/shop.env'",
        "set +a",
    ]
    assert all(not line.startswith("export") for line in lines[sourced:])
    assert lines[-1] == 'exec "$@"'


def test_manage_script_switches_user_before_the_environment() -> None:
    site = pure("full")
    script = site["manageScript"]
    assert "PATH='/usr/sbin:/usr/bin'${PATH:+:$PATH}" in script
    assert "site_user='alice'" in script
    run_as = [line.strip() for line in script.splitlines() if line.strip().startswith("exec ")]
    command = "'/opt/python/bin/python' -m django \"$@\""
    assert len(run_as) == 3
    assert run_as[0].endswith(command)
    assert run_as[1].startswith('exec runuser -u "$site_user" -- ')
    assert run_as[2].startswith('exec sudo -u "$site_user" -- ')
    assert all("django-env-shop" in line and line.endswith(command) for line in run_as)
    assert "secret_key" not in script


def test_secret_key_script_makes_a_private_key_on_the_host() -> None:
    script = pure("full")["secretKeyScript"]
    assert "umask 077" in script
    assert "</dev/urandom" in script
    assert "key_file='/var/www/shop/secret_key'" in script
    assert 'if [ -s "$key_file" ]; then' in script
    unit = pure("full")["services"]["django-secret-key-shop"]
    assert unit["serviceConfig"]["User"] == "alice"
    assert unit["serviceConfig"]["UMask"] == "0077"
    assert unit["serviceConfig"]["RemainAfterExit"] is True


def test_units_are_named_and_ordered() -> None:
    site = pure("minimal")
    services = site["services"]
    assert set(services) == {"django-secret-key-mysite", "django-migrate-mysite", "gunicorn-mysite"}
    assert set(site["sockets"]) == {"gunicorn-mysite"}

    migrate = services["django-migrate-mysite"]
    assert migrate["before"] == ["gunicorn-mysite.service"]
    for dependency in ("postgresql.service", "postgresql.target", "django-secret-key-mysite.service"):
        assert dependency in migrate["after"]
    assert migrate["requires"] == ["postgresql.service", "django-secret-key-mysite.service"]
    assert migrate["wants"] == ["postgresql.target"]

    gunicorn = services["gunicorn-mysite"]
    for dependency in ("gunicorn-mysite.socket", "django-migrate-mysite.service"):
        assert dependency in gunicorn["requires"]
        assert dependency in gunicorn["after"]
    assert all(unit["wantedBy"] == ["multi-user.target"] for unit in services.values())


def test_migrations_run_again_whenever_the_site_changes() -> None:
    migrate = pure("minimal")["services"]["django-migrate-mysite"]
    config = migrate["serviceConfig"]
    assert config["Type"] == "oneshot"
    assert config["RemainAfterExit"] is True
    assert migrate["stopIfChanged"] is False
    # The unit file changes with the wrapper, which holds every path and setting of the site.
    assert re.fullmatch(
        r"/nix/store/\S+-django-env-mysite /opt/python/bin/python -m django migrate --noinput",
        config["ExecStart"],
    )
    assert config["User"] == "mysite"
    assert config["WorkingDirectory"] == "/var/www/mysite"


def test_gunicorn_is_socket_activated_and_restarted_alone() -> None:
    site = pure("full")
    gunicorn = site["services"]["gunicorn-shop"]
    config = gunicorn["serviceConfig"]
    assert gunicorn["stopIfChanged"] is False
    assert config["Type"] == "notify"
    assert config["KillMode"] == "mixed"
    assert config["User"] == "alice"
    assert config["Group"] == "writers"
    assert re.fullmatch(
        r"/nix/store/\S+-django-env-shop /opt/python/bin/python -m gunicorn --name gunicorn-shop "
        r"--workers 4 --worker-class gevent --error-logfile - "
        r"shop\.wsgi:application",
        config["ExecStart"],
    )
    socket = site["sockets"]["gunicorn-shop"]
    assert socket["listenStreams"] == ["/run/gunicorn-shop/gunicorn.sock"]
    assert socket["socketConfig"] == {"SocketUser": "alice", "SocketGroup": "caddy", "SocketMode": "0660"}
    assert socket["wantedBy"] == ["sockets.target"]
    assert "/nix/store" not in json.dumps(socket)


def test_asgi_runs_in_uvicorn_workers_under_the_same_socket() -> None:
    site = pure("asgi")
    gunicorn = site["services"]["gunicorn-shop"]
    assert re.fullmatch(
        r"/nix/store/\S+-django-env-shop /opt/python/bin/python -m gunicorn --name gunicorn-shop "
        r"--workers 1 --worker-class uvicorn\.workers\.UvicornWorker --error-logfile - "
        r"shop\.asgi:application",
        gunicorn["serviceConfig"]["ExecStart"],
    )
    # The same socket activation, readiness and graceful restarts as WSGI.
    assert gunicorn["serviceConfig"]["Type"] == "notify"
    assert gunicorn["stopIfChanged"] is False
    assert site["sockets"] == pure("scheduled")["sockets"]


# What every unit of a site runs with (systemd-analyze security: 2.0 or less); network and umask vary.
SANDBOX: dict[str, object] = {
    "NoNewPrivileges": True,
    "ProtectSystem": "strict",
    "ProtectHome": True,
    "PrivateTmp": True,
    "PrivateDevices": True,
    "DevicePolicy": "closed",
    "PrivateUsers": True,
    "CapabilityBoundingSet": "",
    "ProtectKernelTunables": True,
    "ProtectKernelModules": True,
    "ProtectKernelLogs": True,
    "ProtectControlGroups": True,
    "ProtectClock": True,
    "ProtectHostname": True,
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "RestrictNamespaces": True,
    "RestrictRealtime": True,
    "RestrictSUIDSGID": True,
    "LockPersonality": True,
    "MemoryDenyWriteExecute": True,
    "SystemCallArchitectures": "native",
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "SystemCallErrorNumber": "EPERM",
    "RemoveIPC": True,
}
INTERNET = ["AF_UNIX", "AF_INET", "AF_INET6"]


def sandbox_of(config: dict[str, Any]) -> dict[str, object]:
    return {key: config.get(key) for key in SANDBOX}


def test_every_unit_runs_in_the_sandbox_writing_only_to_the_site_directory() -> None:
    services = pure("full")["services"]
    assert set(services) == {"django-secret-key-shop", "django-migrate-shop", "gunicorn-shop"}
    for config in (unit["serviceConfig"] for unit in services.values()):
        assert sandbox_of(config) == SANDBOX
        assert config["ReadWritePaths"] == ["/var/www/shop"]


def test_units_reach_the_network_only_when_they_need_it() -> None:
    services = pure("minimal")["services"]
    secret_key = services["django-secret-key-mysite"]["serviceConfig"]
    assert (secret_key["PrivateNetwork"], secret_key["RestrictAddressFamilies"]) == (True, "none")
    assert secret_key["UMask"] == "0077"
    # The local database's Unix socket is reachable from a private network.
    migrate = services["django-migrate-mysite"]["serviceConfig"]
    assert (migrate["PrivateNetwork"], migrate["RestrictAddressFamilies"]) == (True, INTERNET)
    # Outbound HTTPS and SMTP.
    gunicorn = services["gunicorn-mysite"]["serviceConfig"]
    assert ("PrivateNetwork" in gunicorn, gunicorn["RestrictAddressFamilies"]) == (False, INTERNET)
    assert migrate["UMask"] == gunicorn["UMask"] == "0027"
    external = pure("externalDatabase")["services"]["django-migrate-api"]["serviceConfig"]
    assert external["PrivateNetwork"] is False


def test_lab_unit_files_repeat_a_key_for_each_item_of_a_list() -> None:
    text = pure("labUnitFiles")["gunicorn-mysite"]
    assert "\nSystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\n" in text
    assert (
        "\nRestrictAddressFamilies=AF_UNIX\nRestrictAddressFamilies=AF_INET\nRestrictAddressFamilies=AF_INET6\n"
        in text
    )
    assert "\nReadWritePaths=/var/www/mysite\n" in text
    # An empty value empties the set: no capability at all.
    assert "\nCapabilityBoundingSet=\n" in text
    assert "\nPrivateUsers=true\n" in text


SCHEDULED = "django-scheduled-shop-clearsessions"


def test_scheduled_commands_run_sandboxed_as_the_site_user() -> None:
    site = pure("scheduled")
    service = site["services"][SCHEDULED]
    config = service["serviceConfig"]
    assert sandbox_of(config) == SANDBOX
    assert config["ReadWritePaths"] == ["/var/www/shop"]
    assert (config["Type"], config["User"], config["WorkingDirectory"]) == (
        "oneshot",
        "shop",
        "/var/www/shop",
    )
    assert "RemainAfterExit" not in config
    assert re.fullmatch(
        r'/nix/store/\S+-django-env-shop /opt/python/bin/python -m django "clearsessions"',
        config["ExecStart"],
    )
    # Started by its timer only, never by a deploy.
    assert "wantedBy" not in service
    assert "django-secret-key-shop.service" in service["requires"]
    assert "django-migrate-shop.service" in service["after"]


def test_scheduled_command_arguments_are_taken_literally_by_systemd() -> None:
    config = pure("scheduled")["services"]["django-scheduled-shop-clean_orders"]["serviceConfig"]
    assert config["ExecStart"].endswith(' -m django "clean_orders" "--note=50%% off, $$HOME \\"quoted\\""')


def test_scheduled_commands_have_timers_and_are_in_the_manifest() -> None:
    site = pure("scheduled")
    assert site["timers"][SCHEDULED] == {
        "description": "Timer of the scheduled command clearsessions of the Django site shop",
        "wantedBy": ["timers.target"],
        "timerConfig": {"OnCalendar": "daily", "Persistent": True},
    }
    manifest = site["manifest"]
    assert manifest["units"][-2:] == [
        "django-scheduled-shop-clean_orders.timer",
        f"{SCHEDULED}.timer",
    ]
    assert manifest["scheduled"][1] == {
        "name": "clearsessions",
        "service": f"{SCHEDULED}.service",
        "timer": f"{SCHEDULED}.timer",
        "command": ["clearsessions"],
        "onCalendar": "daily",
    }
    assert pure("minimal")["manifest"]["scheduled"] == []


def test_lab_timer_files() -> None:
    text = pure("labTimerFiles")["django-scheduled-mysite-clearsessions"]
    assert text.startswith("[Unit]\nDescription=Timer of the scheduled command clearsessions")
    assert "\n[Timer]\nOnCalendar=daily\nPersistent=true\n" in text


def test_directories_belong_to_the_site_user() -> None:
    assert pure("full")["tmpfiles"] == [
        "d /var/www/shop 0750 alice writers - -",
        "d /var/www/shop/media 0750 alice writers - -",
        "z /var/www/shop/secret_key 0600 alice writers - -",
    ]
    assert pure("full")["caddySupplementaryGroups"] == ["writers"]


def test_database_and_role_are_named_after_the_user() -> None:
    site = pure("full")
    assert site["database"] == {"name": "alice", "owner": "alice"}
    assert site["environment"]["DATABASE_URL"] == "postgresql:///alice"


def test_external_database_needs_no_local_server() -> None:
    site = pure("externalDatabase")
    assert site["database"] is None
    assert site["environment"]["DATABASE_URL"] == "postgresql://api@db.example.com/api"
    assert "PGHOST" not in site["environment"]
    migrate = site["services"]["django-migrate-api"]
    assert "postgresql.service" not in migrate["requires"]
    assert "network-online.target" in migrate["wants"]


def test_caddy_site_block() -> None:
    config = pure("minimal")["caddyConfig"]
    main = block(config, "mysite.test")
    assert "\tlog {\n\t\toutput file /var/log/caddy/django-mysite.log\n\t}\n" in main
    assert "\theader -Server\n" in main
    assert "\thandle_errors {\n\t\theader -Server\n\t}\n" in main
    assert "tls internal" not in main
    assert "basic_auth" not in main
    assert (
        "\thandle_path /static/* {\n"
        "\t\troot * /nix/store/00000000000000000000000000000000-mysite-static\n"
        "\t\theader {\n\t\t\t-ETag\n\t\t\t-Last-Modified\n\t\t}\n"
        "\t\tfile_server\n\t}\n"
    ) in main
    assert "\thandle_path /media/* {\n\t\troot * /var/www/mysite/media\n\t\tfile_server\n\t}\n" in main
    assert main.endswith("\thandle {\n\t\treverse_proxy unix//run/gunicorn-mysite/gunicorn.sock\n\t}\n")


def test_caddy_aliases_auth_tls_and_port() -> None:
    config = pure("full")["caddyConfig"]
    main = block(config, "shop.test:8443")
    assert "\ttls internal\n" in main
    assert f"\tbasic_auth {{\n\t\tjane {BCRYPT}\n\t}}\n" in main
    alias = block(config, "www.shop.test:8443")
    assert "\tredir https://shop.test:8443{uri} permanent\n" in alias
    assert "\ttls internal\n" in alias
    assert "reverse_proxy" not in alias


# Assertions (builtins only, as the lab checks them) --------------------------------------------------------

PASSWORD_HELP = "run `caddy hash-password`"

PURE_INVALID = {
    "nullHostname": ["django.sites.mysite.hostname must be a host name"],
    "missingSettings": [
        "django.sites.mysite.settingsModule must be a dotted Python module path",
        "django.sites.mysite.wsgiModule must be a dotted Python module path",
    ],
    "badInstanceName": [
        'django.sites: the instance name "my site" may only contain',
        "django.sites.my site.settingsModule",
        "django.sites.my site.wsgiModule",
        "django.sites.my site.hostname",
        "django.sites.my site.baseDir",
        "django.sites.my site.user",
        "django.sites.my site.group",
    ],
    "hostnameWithPath": ['django.sites.mysite.hostname must be a host name such as "example.com"'],
    "badAlias": ["django.sites.mysite.aliases must be a list of host names"],
    "aliasIsHostname": ['django.sites.mysite.aliases contains the hostname "mysite.test" itself'],
    "portOutOfRange": ["django.sites.mysite.port must be a TCP port between 1 and 65535, got 70000."],
    "portAsString": ['django.sites.mysite.port must be a TCP port between 1 and 65535, got "443".'],
    "noWorkers": ["django.sites.mysite.nbWorkers must be at least 1, got 0."],
    "badWorkerClass": ["django.sites.mysite.workerClass must name a gunicorn worker class"],
    "relativeMediaUrl": ['django.sites.mysite.mediaUrl must be a path that starts and ends with "/"'],
    "staticUrlWithoutSlash": ['django.sites.mysite.staticUrl must be a path that starts and ends with "/"'],
    "sameUrls": ["django.sites.mysite.staticUrl and mediaUrl are both"],
    "staticUrlOnAlias": ["django.sites.mysite: a full staticUrl or mediaUrl must use another host"],
    "plaintextPassword": ["django.sites.mysite.auth.passwordHash must be a bcrypt hash, got null."],
    "missingHash": ["django.sites.mysite.auth.passwordHash must be a bcrypt hash, got null."],
    "badAuthUser": ["django.sites.mysite.auth.user must be a non-empty user name"],
    "authNotAnAttrset": ["django.sites.mysite.auth must be null or"],
    "extraEnvNotAttrs": ["django.sites.mysite.extraEnv must be an attribute set"],
    "badEnvName": [
        "django.sites.mysite.extraEnv has names that are not valid environment variable names: 1ST."
    ],
    "relativeEnvFile": ["django.sites.mysite.extraEnvFiles must be absolute paths"],
    "badServer": ['django.sites.mysite.server must be one of "gunicorn", "gunicorn-uvicorn", got "uwsgi".'],
    "asgiWithoutModule": ["django.sites.mysite.asgiModule must be a dotted Python module path"],
    "badScheduled": [
        'django.sites.mysite.scheduled: the name "clear-sessions" may only contain letters, digits and `_`',
        "django.sites.mysite.scheduled.nothing.command must be a non-empty list",
        "django.sites.mysite.scheduled.nothing.onCalendar must be a systemd calendar event",
    ],
    "relativeBaseDir": ["django.sites.mysite.baseDir must be an absolute path"],
    "badUser": ["django.sites.mysite.user must be a Unix user name", "django.sites.mysite.group must be"],
    "badDatabaseUrl": ["django.sites.mysite.databaseUrl must be null"],
    "sharedAlias": ["django.sites.one and django.sites.two are all served at www.test:443"],
    "sharedStaticHost": ["django.sites.one and django.sites.two are all served at static.test:443"],
    "sharedDatabaseUser": ['django.sites.one and django.sites.two share the user "web" and a local database'],
    "sharedUserOtherGroup": ['django.sites.one and django.sites.two share the user "web" but not its group'],
}


def assert_messages(messages: list[str], expected_starts: list[str]) -> None:
    assert len(messages) == len(expected_starts), messages
    for message, start in zip(messages, expected_starts, strict=True):
        assert message.startswith(start), message


def test_valid_sites_pass_every_assertion() -> None:
    assert pure("valid") == []


@pytest.mark.parametrize("case", sorted(PURE_INVALID))
def test_assertion_message(case: str) -> None:
    assert_messages(pure("invalid")[case], PURE_INVALID[case])


def test_password_messages_explain_how_to_hash() -> None:
    invalid = pure("invalid")
    for case in ("plaintextPassword", "missingHash"):
        assert PASSWORD_HELP in invalid[case][0]
        assert "passwordHash" in invalid[case][0]


def test_lab_sites_without_mandatory_options_are_named() -> None:
    assert_messages(
        pure("missingMandatory"),
        [
            "django.sites.mysite.hostname is not set",
            "django.sites.mysite.staticFilesPackage is not set",
            "django.sites.mysite.settingsModule must be",
            "django.sites.mysite.wsgiModule must be",
        ],
    )


# Packaging helpers ------------------------------------------------------------------------------------------


def test_requirement_names_are_those_of_nixpkgs() -> None:
    helpers = pure("flakeLib")
    assert helpers["requirementNames"] == ["django", "psycopg", "zope-interface", "typing-extensions"]
    assert "django" in helpers["exampleRequirements"]
    assert all(not name.startswith(("#", "-")) for name in helpers["exampleRequirements"])


def test_site_package_is_a_pyproject_application_that_names_its_python() -> None:
    assert pure("flakeLib")["site"] == {
        "pname": "example-site",
        "version": "1.0.0",
        "pyproject": True,
        "build-system": ["setuptools"],
        "dependencies": ["django_5", "psycopg"],
        "pythonRelaxDeps": True,
        "pythonImportsCheck": ["example_site"],
        "passthruPython": "python3-3.12.0",
    }


def test_static_files_are_collected_at_build_time() -> None:
    static = pure("flakeLib")["static"]
    assert static["name"] == "example-site-static-1.0.0"
    assert static["environment"] == {
        "DJANGO_SETTINGS_MODULE": "example_site.config.settings.base",
        "SECRET_KEY": "collectstatic",
        "DATABASE_URL": "sqlite://:memory:",
        "MEDIA_ROOT": "/dev/null",
        "ALLOWED_HOSTS": "localhost",
        "SITE_RELEASE": "test",
    }
    assert static["script"].splitlines() == [
        'export STATIC_ROOT="$out"',
        "/nix/store/00000000000000000000000000000000-env-module-example-site/bin/python"
        " -m django collectstatic --noinput",
    ]


def test_static_files_of_a_ready_environment_use_its_python() -> None:
    static = pure("flakeLib")["staticOfVirtualEnv"]
    assert static["name"] == "django-site-static-0"
    assert static["script"].splitlines()[1] == (
        "/nix/store/00000000000000000000000000000000-mysite-env/bin/python -m django collectstatic --noinput"
    )


# A stand-in for pkgs.runCommand that builds for real: its output holds the environment's STATIC_CONTENT only.
_STATIC_BY_CONTENT = """
{ flakeLib, version, content }:
flakeLib.mkStaticFiles {
  pkgs.runCommand = name: environment: _script: builtins.derivation (environment // {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo $STATIC_CONTENT > $out" ];
  });
  site = { pname = "example-site"; inherit version; };
  pythonEnv = { outPath = "/nix/store/00000000000000000000000000000000-mysite-env"; };
  settingsModule = "mysite.settings";
  environment = { STATIC_CONTENT = content; SITE_RELEASE = version; };
  byContent = true;
}
"""


def static_by_content(version: str, content: str) -> str:
    """The static files' path of a release, built (the evaluation builds collectstatic's output first)."""
    output = run_nix(
        nix_tool("nix-instantiate"),
        "--eval",
        "--read-write-mode",
        *NO_SUBSTITUTERS,
        "--expr",
        f"({_STATIC_BY_CONTENT}) {{ flakeLib = import {REPO}/nix/flake-lib.nix; "
        f"version = {json.dumps(version)}; content = {json.dumps(content)}; }}",
    )
    return str(json.loads(output))


def test_static_files_by_content_keep_their_path_while_they_do_not_change() -> None:
    first = static_by_content("1.0.0", "a { color: red }")
    assert first.endswith("-example-site-static")
    assert Path(first).read_text() == "a { color: red }\n"
    # Another release (its collectstatic derivation differs) with the same files: the same path.
    assert static_by_content("1.0.1", "a { color: red }") == first
    assert static_by_content("1.0.2", "a { color: blue }") != first


# Scripts, built and run -------------------------------------------------------------------------------------


@pytest.fixture
def site_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: the site user of the runuser test must be able to enter it.
    path = Path(tempfile.mkdtemp(prefix="djdeploy-site-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def build_scripts(site_dir: Path, user: str, python: Path) -> dict[str, Path]:
    command = nix_tool("nix-build")
    if not os.access("/nix/store", os.W_OK):
        pytest.skip("building the site scripts needs a writable Nix store")
    names = ["envWrapper", "manageScript", "secretKeyScript"]
    output = run_nix(
        command,
        "--no-out-link",
        *NO_SUBSTITUTERS,
        str(NIX_TESTS / "scripts.nix"),
        *argstrs(baseDir=str(site_dir), user=user, python=str(python)),
        *(argument for name in names for argument in ("-A", name)),
    )
    return dict(zip(names, (Path(line) for line in output.split()), strict=True))


def fake_python(directory: Path) -> Path:
    """Stands in for python: prints its user, its arguments and the site's variables."""
    path = directory / "python"
    path.write_text(
        "#!/bin/sh\n"
        'printf "user=%s\\n" "$(id -un)"\n'
        'printf "args=%s\\n" "$*"\n'
        'printf "SECRET_KEY=%s\\n" "$SECRET_KEY"\n'
        'printf "DJANGO_SETTINGS_MODULE=%s\\n" "$DJANGO_SETTINGS_MODULE"\n'
    )
    path.chmod(0o755)
    return path


def output_values(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def test_secret_key_is_created_once_and_private(site_dir: Path) -> None:
    scripts = build_scripts(site_dir, current_user(), fake_python(site_dir))
    key_file = site_dir / "secret_key"
    key_file.touch()  # an empty file, as older deployments created, is replaced
    subprocess.run([scripts["secretKeyScript"]], check=True)
    content = key_file.read_text()
    assert re.fullmatch(r'SECRET_KEY="[A-Za-z0-9]{64}"\n', content)
    assert key_file.stat().st_mode & 0o777 == 0o600
    subprocess.run([scripts["secretKeyScript"]], check=True)
    assert key_file.read_text() == content


def test_env_wrapper_runs_its_arguments_in_the_site_environment(site_dir: Path) -> None:
    scripts = build_scripts(site_dir, current_user(), fake_python(site_dir))
    (site_dir / "secret_key").write_text('export SECRET_KEY="older-format-key"\n')
    (site_dir / "extra.env").write_text('OVERRIDDEN="from the file"\nFROM_FILE="a b"\n')
    shown = subprocess.run(
        [scripts["envWrapper"], "/bin/sh", "-c", "umask; env"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    assert shown.splitlines()[0] == "0027"
    values = output_values(shown)
    assert values["SECRET_KEY"] == "older-format-key"
    assert values["QUOTED"] == 'it\'s "quoted" $HOME `id`'
    assert values["OVERRIDDEN"] == "from the file"
    assert values["FROM_FILE"] == "a b"
    assert values["MEDIA_ROOT"] == f"{site_dir}/media"
    assert values["DJANGO_SETTINGS_MODULE"] == "scripted.settings"


def test_manage_script_runs_django_as_the_site_user(site_dir: Path) -> None:
    scripts = build_scripts(site_dir, current_user(), fake_python(site_dir))
    (site_dir / "secret_key").write_text('SECRET_KEY="k"\n')
    (site_dir / "extra.env").write_text("")
    shown = subprocess.run(
        [scripts["manageScript"], "shell", "-c", "print(1)"], capture_output=True, text=True, check=True
    ).stdout
    assert output_values(shown) == {
        "user": current_user(),
        "args": "-m django shell -c print(1)",
        "SECRET_KEY": "k",
        "DJANGO_SETTINGS_MODULE": "scripted.settings",
    }


def test_manage_script_as_root_reads_secrets_as_the_site_user(site_dir: Path) -> None:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("switching users needs root and runuser")
    site_user = pwd.getpwnam("nobody")
    scripts = build_scripts(site_dir, site_user.pw_name, fake_python(site_dir))
    for name in ("secret_key", "extra.env"):
        secret = site_dir / name
        secret.write_text('SECRET_KEY="only-nobody-reads-this"\n' if name == "secret_key" else "")
        secret.chmod(0o600)
        os.chown(secret, site_user.pw_uid, site_user.pw_gid)
    shown = subprocess.run(
        [scripts["manageScript"], "check"], capture_output=True, text=True, check=True, cwd="/"
    ).stdout
    values = output_values(shown)
    assert values["user"] == "nobody"
    assert values["SECRET_KEY"] == "only-nobody-reads-this"


def caddy_binary() -> str | None:
    """caddy on PATH, else the lab's own build of a current Caddy (needs nix-build and the package index)."""
    found = shutil.which("caddy")
    if found or shutil.which("nix-build") is None:
        return found
    built = subprocess.run(
        [
            *("nix-build", str(REPO / "nix/lab/packages.nix"), "-A", "caddy", "--no-out-link"),
            *("--option", "substituters", ""),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    return f"{built.stdout.strip()}/bin/caddy" if built.returncode == 0 else None


def test_caddy_accepts_the_generated_config(tmp_path: Path) -> None:
    caddy = caddy_binary()
    if caddy is None:
        pytest.skip("caddy is not installed and the lab's Caddy could not be built")
    version = subprocess.run([caddy, "version"], capture_output=True, text=True, check=True).stdout
    found = re.match(r"v2\.(\d+)", version)
    if found is None or int(found.group(1)) < 8:
        pytest.skip(f"caddy {version.strip()} predates the basic_auth directive (2.8)")
    (tmp_path / "logs").mkdir()
    (tmp_path / "static").mkdir()
    text = evaluate(
        NIX_TESTS / "caddy-config.nix", logDir=str(tmp_path / "logs"), staticRoot=str(tmp_path / "static")
    )
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(text)
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path)}
    validated = subprocess.run(
        [caddy, "validate", "--config", str(caddyfile), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=False,
        env={**home, "PATH": "/usr/bin:/bin"},
    )
    assert validated.returncode == 0, validated.stderr
    formatted = subprocess.run([caddy, "fmt", str(caddyfile)], capture_output=True, text=True, check=True)
    assert formatted.stdout == text
    # What NixOS writes for the same virtual hosts, once formatted as NixOS formats it, is that text too.
    nixos = tmp_path / "nixos-Caddyfile"
    directories = {"logDir": str(tmp_path / "logs"), "staticRoot": str(tmp_path / "static")}
    nixos.write_text(evaluate(NIX_TESTS / "nixos-caddyfile.nix", **directories))
    # caddy fmt exits 1 when its input was not formatted yet, as here.
    from_nixos = subprocess.run([caddy, "fmt", str(nixos)], capture_output=True, text=True, check=False)
    assert from_nixos.stdout == text


# NixOS module -----------------------------------------------------------------------------------------------


def test_module_defaults() -> None:
    result = module("defaults")
    assert result["failedAssertions"] == []
    assert result["warnings"] == []
    site = result["sites"]["mysite_prod"]
    assert site["settingsModule"] == "mysite.config.settings.base"
    assert site["wsgiModule"] == "mysite.config.wsgi"
    assert site["user"] == site["group"] == "mysite_prod"
    assert site["baseDir"] == "/var/www/mysite_prod"
    assert site["port"] == 443
    assert site["nbWorkers"] == 1
    assert site["extraPackages"] == ["gunicorn", "gevent"]
    assert set(result["services"]) == {
        "caddy",
        "django-secret-key-mysite_prod",
        "django-migrate-mysite_prod",
        "gunicorn-mysite_prod",
    }
    assert set(result["sockets"]) == {"gunicorn-mysite_prod"}
    assert result["services"]["caddy"]["serviceConfig"] == {"SupplementaryGroups": ["mysite_prod"]}
    assert result["users"] == {"mysite_prod": {"isSystemUser": True, "group": "mysite_prod"}}
    assert result["groups"] == ["mysite_prod"]
    assert result["postgresql"] == {
        "enable": True,
        "ensureDatabases": ["mysite_prod"],
        "ensureUsers": [{"name": "mysite_prod", "ensureDBOwnership": True}],
    }
    assert result["caddy"]["enable"] is True
    assert result["caddy"]["config"].startswith("mysite.test {\n")
    assert result["systemPackages"] == ["manage-mysite_prod"]
    assert result["tmpfiles"][0] == "d /var/www/mysite_prod 0750 mysite_prod mysite_prod - -"
    assert result["logrotate"] == {}
    # Caddy serves the static files through a link in /etc that the switch updates.
    assert result["etcSources"]["djdeploy/static/mysite_prod"].endswith("-mysite-static")
    assert "root * /etc/djdeploy/static/mysite_prod\n" in result["caddy"]["config"]
    [manifest] = result["sitesManifest"]
    assert manifest["name"] == "mysite_prod"
    assert manifest["hostname"] == "mysite.test"
    assert manifest["healthCheck"] == {"path": "/", "status": 200}
    assert manifest["units"] == [
        "django-secret-key-mysite_prod.service",
        "django-migrate-mysite_prod.service",
        "gunicorn-mysite_prod.socket",
        "gunicorn-mysite_prod.service",
    ]


def test_module_units_carry_the_sandbox() -> None:
    services = module("defaults")["services"]
    for name in ("django-secret-key-mysite_prod", "django-migrate-mysite_prod", "gunicorn-mysite_prod"):
        config = services[name]["serviceConfig"]
        assert sandbox_of(config) == SANDBOX, name
        assert config["ReadWritePaths"] == ["/var/www/mysite_prod"]
    assert services["django-secret-key-mysite_prod"]["serviceConfig"]["PrivateNetwork"] is True


def test_module_site_settings_replace_single_values_of_the_sandbox_and_extend_lists() -> None:
    config = module("sandboxOverride")["services"]["gunicorn-mysite"]["serviceConfig"]
    assert config["MemoryDenyWriteExecute"] is False
    assert sorted(config["ReadWritePaths"]) == ["/srv/uploads", "/var/www/mysite"]
    assert sorted(config["SystemCallFilter"]) == ["@system-service", "mbind", "~@privileged @resources"]
    assert config["ProtectSystem"] == "strict"


def test_module_manage_command_has_its_tools() -> None:
    entries = module("full")["sites"]["shop"]["manageEntries"]
    assert [entry["name"] for entry in entries] == ["bin/manage-shop"]
    text = entries[0]["text"]
    assert re.search(
        r"PATH='/nix/store/\S+-coreutils-9\.5/bin:/nix/store/\S+-util-linux-2\.40/bin:"
        r"/run/wrappers/bin'",
        text,
    )


def test_module_keeps_a_build_python_application_in_the_environment() -> None:
    command = module("defaults")["services"]["gunicorn-mysite_prod"]["serviceConfig"]["ExecStart"]
    assert re.search(r"-python3-env\+mysite\+gunicorn\+gevent/bin/python -m gunicorn ", command)


def test_module_takes_python_from_a_python_module_package() -> None:
    result = module("pythonModulePackage")
    command = result["services"]["gunicorn-blog"]["serviceConfig"]["ExecStart"]
    assert "-python3-env+django-blog+gunicorn+gevent/bin/python" in command
    assert result["sites"]["blog"]["settingsModule"] == "django_blog.config.settings.base"
    assert command.endswith(" django_blog.config.wsgi:application")


def test_module_runs_a_ready_virtual_environment_as_it_is() -> None:
    result = module("uvVirtualEnv")
    assert result["failedAssertions"] == []
    assert result["sites"]["mysite"]["extraPackages"] == []
    for unit in ("gunicorn-mysite", "django-migrate-mysite"):
        command = result["services"][unit]["serviceConfig"]["ExecStart"]
        assert re.search(r" /nix/store/\S+-mysite-env/bin/python -m ", command), command
    [entry] = result["sites"]["mysite"]["manageEntries"]
    assert re.search(r"'/nix/store/\S+-mysite-env/bin/python' -m django", entry["text"])


def test_module_runs_a_poetry_environment_instead_of_wrapping_the_package() -> None:
    command = module("poetryEnv")["services"]["gunicorn-mysite"]["serviceConfig"]["ExecStart"]
    assert re.search(r" /nix/store/\S+-python3-3\.12\.0-env/bin/python -m gunicorn ", command), command
    assert "python3-env+" not in command


def test_module_says_where_a_virtual_environment_given_as_package_goes() -> None:
    error = module_error("virtualEnvAsPackage")
    assert "django.sites.mysite.package (mysite-env) says neither which Python it was built with" in error
    assert "(uv2nix's mkVirtualEnv, poetry2nix's mkPoetryEnv) goes in django.sites.mysite.pythonEnv." in error


def test_module_without_package_or_environment_says_so() -> None:
    assert (
        "django.sites.mysite.package is not set: give the Django project as a Python package, or a ready "
        "environment as pythonEnv." in module_error("noPackage")
    )


def test_module_extra_packages_replace_the_defaults() -> None:
    command = module("extraPackagesOverride")["services"]["gunicorn-mysite"]["serviceConfig"]["ExecStart"]
    assert "-python3-env+mysite+gunicorn/bin/python" in command


def test_module_full_site() -> None:
    result = module("full")
    assert result["failedAssertions"] == []
    config = result["caddy"]["config"]
    main = block(config, "shop.test:8443")
    assert "\ttls internal\n" in main
    assert f"\tbasic_auth {{\n\t\tjane {BCRYPT}\n\t}}\n" in main
    assert "\theader -Server\n" in main
    assert "\thandle_path /media/* {\n\t\troot * /srv/shop/media\n" in main
    for alias in ("www.shop.test:8443", "shop.example:8443"):
        assert "\tredir https://shop.test:8443{uri} permanent\n" in block(config, alias)
    command = result["services"]["gunicorn-shop"]["serviceConfig"]["ExecStart"]
    assert " --workers 3 --worker-class sync " in command
    assert command.endswith(" shop.wsgi:app")
    assert result["tmpfiles"] == [
        "d /srv/shop 0750 shop shop - -",
        "d /srv/shop/media 0750 shop shop - -",
        "z /srv/shop/secret_key 0600 shop shop - -",
    ]


def test_module_plain_http_site() -> None:
    config = module("plainHttp")["caddy"]["config"]
    main = block(config, "http://intranet.test")
    assert "tls internal" not in main
    assert "\tredir http://intranet.test{uri} permanent\n" in block(config, "http://wiki.test")


def test_module_full_static_and_media_urls() -> None:
    config = module("fullUrls")["caddy"]["config"]
    news = block(config, "news.test")
    assert "handle_path" not in news
    static_host = block(config, "static.news.test")
    assert "\thandle {\n\t\troot * /etc/djdeploy/static/news\n" in static_host
    assert "\thandle_path /media/* {\n\t\troot * /var/www/news/media\n" in static_host
    files = block(config, "http://files.blog.test:8080")
    assert "\thandle_path /uploads/* {\n\t\troot * /var/www/blog/media\n" in files
    assert "\thandle {\n\t\trespond 404\n\t}\n" in files
    assert "\thandle_path /static/* {\n" in block(config, "blog.test")


def test_module_asgi_site_gets_uvicorn() -> None:
    result = module("asgi")
    assert result["failedAssertions"] == []
    assert result["sites"]["mysite"]["extraPackages"] == ["gunicorn", "uvicorn"]
    command = result["services"]["gunicorn-mysite"]["serviceConfig"]["ExecStart"]
    assert "-python3-env+mysite+gunicorn+uvicorn/bin/python -m gunicorn " in command
    assert command.endswith(
        " --worker-class uvicorn.workers.UvicornWorker --error-logfile - mysite.config.asgi:application"
    )


def test_module_scheduled_command() -> None:
    result = module("scheduled")
    assert result["failedAssertions"] == []
    unit = "django-scheduled-mysite-clearsessions"
    config = result["services"][unit]["serviceConfig"]
    assert sandbox_of(config) == SANDBOX
    assert config["Type"] == "oneshot"
    assert config["User"] == "mysite"
    assert re.search(
        r"-python3-env\+mysite\+gunicorn\+gevent/bin/python -m django \"clearsessions\"$", config["ExecStart"]
    )
    assert result["timers"][unit]["timerConfig"] == {"OnCalendar": "daily", "Persistent": True}
    assert result["timers"][unit]["wantedBy"] == ["timers.target"]
    [manifest] = result["sitesManifest"]
    assert manifest["scheduled"] == [
        {
            "name": "clearsessions",
            "service": f"{unit}.service",
            "timer": f"{unit}.timer",
            "command": ["clearsessions"],
            "onCalendar": "daily",
        }
    ]
    assert manifest["units"][-1] == f"{unit}.timer"


def test_module_sites_are_caddy_virtual_hosts() -> None:
    hosts = module("full")["caddy"]["virtualHosts"]
    assert set(hosts) == {"shop.test:8443", "www.shop.test:8443", "shop.example:8443"}
    assert hosts["shop.test:8443"]["logFormat"] == "output file /var/log/caddy/django-shop.log\n"
    assert module("full")["caddy"]["extraConfig"] == ""


def test_module_user_directives_join_the_site_block() -> None:
    config = module("userVirtualHost")["caddy"]["config"]
    assert len(re.findall(r"^mysite\.test \{$", config, re.MULTILINE)) == 1
    main = block(config, "mysite.test")
    assert "\tencode zstd gzip\n" in main
    assert '\theader Strict-Transport-Security "max-age=31536000"\n' in main
    assert "\treverse_proxy unix//run/gunicorn-mysite/gunicorn.sock\n" in main
    alias = block(config, "www.mysite.test")
    assert "encode" not in alias


def test_module_user_log_format_replaces_the_site_log() -> None:
    main = block(module("userLogFormat")["caddy"]["config"], "mysite.test")
    assert main.startswith("\tlog {\n\t\toutput discard\n\t}\n")
    assert "django-mysite.log" not in main


def test_module_user_override_keeps_database_ownership() -> None:
    result = module("userOverride")
    assert result["failedAssertions"] == []
    assert result["users"] == {"alice": {"isSystemUser": True, "group": "writers"}}
    assert result["groups"] == ["writers"]
    assert result["postgresql"]["ensureDatabases"] == ["alice"]
    assert result["postgresql"]["ensureUsers"] == [{"name": "alice", "ensureDBOwnership": True}]
    gunicorn = result["services"]["gunicorn-blog"]["serviceConfig"]
    assert (gunicorn["User"], gunicorn["Group"]) == ("alice", "writers")
    assert result["sockets"]["gunicorn-blog"]["socketConfig"]["SocketUser"] == "alice"
    assert result["services"]["caddy"]["serviceConfig"]["SupplementaryGroups"] == ["writers"]


def test_module_external_database_creates_none() -> None:
    result = module("externalDatabase")
    assert result["postgresql"] == {"enable": False, "ensureDatabases": [], "ensureUsers": []}
    assert "postgresql.service" not in result["services"]["django-migrate-api"]["requires"]


def module_error(case: str) -> str:
    """The message with which the evaluation of a module case stops."""
    if (reason := nixpkgs_lib_missing()) is not None:
        pytest.skip(reason)
    command = [nix_tool("nix-instantiate"), "--eval", "--strict", "--json", *NO_SUBSTITUTERS]
    result = subprocess.run(
        [*command, str(MODULE_CASES), "-A", case], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0, result.stdout
    return " ".join(result.stderr.split())


def test_extra_env_as_a_list_is_read_as_files() -> None:
    wrapper = pure("legacyExtraEnvList")["envWrapper"]
    assert ". '/run/secrets/old.env'" in wrapper.splitlines()


def test_module_warns_about_extra_env_as_a_list() -> None:
    assert module("legacyExtraEnvList")["warnings"] == [
        "django.sites.mysite.extraEnv is a list of files: set extraEnvFiles instead."
    ]


def test_module_plaintext_password_is_a_removed_option() -> None:
    [removed, hash_missing] = module("invalid")["plaintextPassword"]
    text = " ".join(removed.split())
    assert text.startswith(
        "django.sites.mysite.auth: The option definition `password' in `/etc/nixos/configuration.nix'"
    )
    assert "no longer has any effect; please remove it." in text
    assert "run `caddy hash-password`" in text
    assert "auth.passwordHash" in text
    assert hash_missing.startswith("django.sites.mysite.auth.passwordHash must be a bcrypt hash, got null.")


MODULE_INVALID = {
    "notAHash": ['django.sites.mysite.auth.passwordHash must be a bcrypt hash, got "secret".'],
    "aliasIsHostname": ['django.sites.mysite.aliases contains the hostname "mysite.test" itself'],
    "portZero": ["django.sites.mysite.port must be a TCP port between 1 and 65535, got 0."],
    "relativeStaticUrl": ['django.sites.mysite.staticUrl must be a path that starts and ends with "/"'],
    "sameStaticAndMediaUrl": ["django.sites.mysite.staticUrl and mediaUrl are both"],
    "staticUrlOnOwnHost": ["django.sites.mysite: a full staticUrl or mediaUrl must use another host"],
    "hostnameWithScheme": ["django.sites.mysite.hostname must be a host name"],
    "relativeEnvFile": ["django.sites.mysite.extraEnvFiles must be absolute paths"],
    "badEnvName": ["django.sites.mysite.extraEnv has names that are not valid environment variable names"],
    "sharedHostname": ["django.sites.one and django.sites.two are all served at mysite.test:443"],
    "sharedDatabaseUser": ['django.sites.one and django.sites.two share the user "web" and a local database'],
}


@pytest.mark.parametrize("case", sorted(MODULE_INVALID))
def test_module_assertion(case: str) -> None:
    assert_messages(module("invalid")[case], MODULE_INVALID[case])
