"""The binary cache: the exact commands that push, sign and fetch, and how a deploy uses them."""

from __future__ import annotations

import dataclasses
import io
import json
import shlex
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from djdeploy.deploy import cache, fleet, nix
from djdeploy.deploy.options import Options
from djdeploy.deploy.outcome import Result
from djdeploy.inventory import Cache, Host
from tests import fake_ssh
from tests.fake_ssh import Answer, ok
from tests.test_deploy_commands import NEW, DeployHost, fakes, host  # noqa: F401 (fixtures used below)

NIX = list(nix.NIX_COMMAND)
PUSH = cache.push
BINARY_CACHE = Cache(
    push="file:///srv/nix-cache?compression=zstd",
    substitute="http://10.0.0.1:8080",
    signing_key=Path("/keys/cache.sec"),
    public_key="lab-cache-1:AAAA",
)


class CacheHost(DeployHost):
    """A deploy's host that also answers `nix store ping` and `nix copy --from` as told."""

    reach: Answer = ok()
    fetched: Answer = ok()

    @property
    def commands(self) -> list[str]:
        """Every command it received, over any connection, in order."""
        return [sent.command for sent in self.network.sent_to("192.0.2.1")]

    def answer(self, command: str) -> Answer:
        if command == shlex.join(cache.reach_command(BINARY_CACHE)):
            return self.reach
        if command == shlex.join(cache.fetch_command(BINARY_CACHE, NEW)):
            return self.fetched
        return super().answer(command)


def test_the_push_signs_each_path_as_it_writes_it() -> None:
    assert cache.push_command(BINARY_CACHE, [NEW]) == [
        *NIX,
        "copy",
        "-v",
        "--to",
        "file:///srv/nix-cache?compression=zstd&secret-key=/keys/cache.sec",
        str(NEW),
    ]


def test_the_host_pings_then_fetches_from_the_substitute_url_checking_signatures() -> None:
    assert cache.reach_command(BINARY_CACHE) == [*NIX, "store", "ping", "--store", "http://10.0.0.1:8080"]
    # No --no-check-sigs: the host's trusted-public-keys decide.
    assert cache.fetch_command(BINARY_CACHE, NEW) == [
        *NIX,
        "copy",
        "--from",
        "http://10.0.0.1:8080",
        str(NEW),
    ]


def test_a_real_push_writes_only_what_the_cache_lacks_signed(tmp_path: Path) -> None:
    content = tmp_path / "page.txt"
    content.write_text(f"a page of {tmp_path}\n")
    path = Path(
        subprocess.run(
            ["nix-store", "--add", str(content)], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    secret, public = tmp_path / "key.sec", tmp_path / "key.pub"
    subprocess.run(["nix-store", "--generate-binary-cache-key", "test-cache-1", secret, public], check=True)
    store = tmp_path / "cache"
    binary_cache = Cache(f"file://{store}", f"file://{store}", secret, public.read_text())
    written: list[str] = []
    cache.push(binary_cache, [path], written.append)
    assert written == [str(path)]
    narinfo = (store / f"{path.name.split('-')[0]}.narinfo").read_text()
    assert "Sig: test-cache-1:" in narinfo
    again: list[str] = []
    cache.push(binary_cache, [path], again.append)
    assert again == []  # already there
    info = json.loads(
        subprocess.run(
            [*NIX, "path-info", "--json", "--store", f"file://{store}", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert info[0]["signatures"][0].startswith("test-cache-1:")


@pytest.fixture
def cached(
    host: Host,  # noqa: F811 (the fixture)
    fakes: DeployHost,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Host, CacheHost, list[list[Path]], list[str]]:
    """web1 with a cache; the pushes and direct copies made, recorded."""
    web1 = CacheHost()
    web1.network = fake_ssh.install(monkeypatch, {"192.0.2.1": web1})
    pushed: list[list[Path]] = []
    copied: list[str] = []
    monkeypatch.setattr(cache, "push", lambda binary_cache, systems, on_path: pushed.append(systems))
    monkeypatch.setattr(nix, "copy_closure", lambda target, path, **kwargs: copied.append(str(path)))
    return dataclasses.replace(host, cache=BINARY_CACHE), web1, pushed, copied


def deploy(target: Host) -> tuple[Result, str]:
    output = io.StringIO()
    [result] = fleet.deploy([target], Options(), Console(file=output, width=200))
    return result, output.getvalue()


def test_a_deploy_pushes_once_and_the_host_fetches_instead_of_the_copy(
    cached: tuple[Host, CacheHost, list[list[Path]], list[str]],
) -> None:
    web1_host, web1, pushed, copied = cached
    result, output = deploy(web1_host)
    assert result.outcome == "deployed", result.message
    assert pushed == [[NEW]]
    assert copied == []
    commands = web1.commands
    fetch = commands.index(shlex.join(cache.fetch_command(BINARY_CACHE, NEW)))
    assert commands[fetch - 1] == shlex.join(cache.reach_command(BINARY_CACHE))
    assert "djdeploy-migration-check" in commands[fetch + 1]
    assert commands[fetch + 2].startswith("mkdir -p /run/djdeploy/activations/")
    assert "fetch the closure from the cache" in output
    assert "copy the closure" not in output


def test_a_host_that_cannot_reach_the_cache_gets_the_direct_copy_and_says_so(
    cached: tuple[Host, CacheHost, list[list[Path]], list[str]],
) -> None:
    web1_host, web1, _, copied = cached
    web1.reach = Answer(
        exit_code=1,
        stderr="error: unable to download 'http://10.0.0.1:8080/nix-cache-info': Couldn't connect\n",
    )
    result, output = deploy(web1_host)
    assert result.outcome == "deployed", result.message
    assert copied == [str(NEW)]
    assert shlex.join(cache.fetch_command(BINARY_CACHE, NEW)) not in web1.commands
    assert "copy the closure (the host cannot reach the cache: unable to download" in output


def test_a_path_the_host_refuses_switches_nothing(
    cached: tuple[Host, CacheHost, list[list[Path]], list[str]],
) -> None:
    web1_host, web1, _, copied = cached
    web1.fetched = Answer(
        exit_code=1, stderr=f"error: cannot add path '{NEW}' because it lacks a valid signature\n"
    )
    result, _ = deploy(web1_host)
    assert result.outcome == "failed"
    assert "lacks a valid signature" in result.message
    assert "trusted-public-keys must list 'lab-cache-1:AAAA'" in result.message
    assert not any("systemd-run" in command for command in web1.commands)
    assert "rm -rf /run/djdeploy/lock" in web1.commands[-1]  # unlocked: the host runs what it ran
    assert copied == []


def test_a_cache_that_cannot_be_written_stops_before_any_host_is_touched(
    cached: tuple[Host, CacheHost, list[list[Path]], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    web1_host, web1, _, _ = cached
    monkeypatch.setattr(cache, "push", PUSH)
    missing_key = dataclasses.replace(BINARY_CACHE, signing_key=tmp_path / "absent.sec")
    with pytest.raises(cache.CacheUnwritable, match="No host was touched"):
        deploy(dataclasses.replace(web1_host, cache=missing_key))
    assert web1.commands == []
