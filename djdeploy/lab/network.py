"""A network namespace and a veth pair per lab host, and the LAN that joins the hosts to each other."""

from __future__ import annotations

from djdeploy.lab.layout import MAX_HOSTS, LabHost, LabLayout
from djdeploy.remote import process

# The LAN's bridge, in the LAN's own namespace: hosts reach each other there without this machine (which
# does not forward packets) in between, as a build host copies to servers beside it.
LAN_BRIDGE = "br0"


def create_lan(layout: LabLayout) -> None:
    """The LAN's namespace and bridge, once for all hosts."""
    if layout.lan_netns in namespaces():
        return
    process.run(["ip", "netns", "add", layout.lan_netns])
    process.run(["ip", "-n", layout.lan_netns, "link", "add", LAN_BRIDGE, "type", "bridge"])
    process.run(["ip", "-n", layout.lan_netns, "link", "set", LAN_BRIDGE, "up"])


def remove_lan(layout: LabLayout) -> None:
    if layout.lan_netns in namespaces():
        process.run(["ip", "netns", "del", layout.lan_netns])


def join_lan(layout: LabLayout, host: LabHost) -> None:
    """Give the host eth1 on the LAN, and routes to the other hosts' addresses through it."""
    lan_run = ["ip", "-n", layout.lan_netns]
    port = f"lan{host.index}"
    if port in _links_of(layout.lan_netns):
        process.run([*lan_run, "link", "del", port])
    process.run([*lan_run, "link", "add", port, "type", "veth", "peer", "name", "eth1", "netns", host.netns])
    process.run([*lan_run, "link", "set", port, "master", LAN_BRIDGE])
    process.run([*lan_run, "link", "set", port, "up"])
    netns_run = ["ip", "-n", host.netns]
    process.run([*netns_run, "addr", "add", f"{host.lan_address}/24", "dev", "eth1"])
    process.run([*netns_run, "link", "set", "eth1", "up"])
    for other in (layout.host(index) for index in range(1, MAX_HOSTS + 1) if index != host.index):
        process.run([*netns_run, "route", "add", f"{other.address}/32", "via", other.lan_address])


# The metric of the lab's unreachable routes: above the kernel's (0) for a host's veth, so that the veth's
# route wins while it is up, and the unreachable one as soon as it is down or gone.
GUARD_METRIC = 4231


def guard_routes(layout: LabLayout) -> list[str]:
    """Each subnet a lab host may use (<subnet>.N.0/24, N from 1 to MAX_HOSTS), and no other address."""
    return [f"{layout.host(index).gateway.rsplit('.', 1)[0]}.0/24" for index in range(1, MAX_HOSTS + 1)]


def guard(layout: LabLayout) -> None:
    """Keep the lab's addresses on this machine: a packet for a host whose veth is down fails here, instead of
    following the default route out (the machine's own 10.x networks stay reachable: nothing wider is added).
    """
    for subnet in guard_routes(layout):
        process.run(["ip", "route", "replace", "unreachable", subnet, "metric", str(GUARD_METRIC)])


def unguard(layout: LabLayout) -> None:
    """Remove exactly the routes guard added (absent ones are fine)."""
    listing = process.output(["ip", "route", "show", "type", "unreachable"])
    present = {line.strip() for line in listing.splitlines()}
    for subnet in guard_routes(layout):
        if f"unreachable {subnet} metric {GUARD_METRIC}" in present:
            process.run(["ip", "route", "del", "unreachable", subnet, "metric", str(GUARD_METRIC)])


def create(host: LabHost) -> None:
    """Make the host's namespace with eth0 at its address, and the host-side end of the veth pair."""
    remove(host)
    netns_run = ["ip", "-n", host.netns]
    process.run(["ip", "netns", "add", host.netns])
    process.run(
        ["ip", "link", "add", host.host_link, "type", "veth", "peer", "name", "eth0", "netns", host.netns]
    )
    process.run(["ip", "addr", "add", f"{host.gateway}/24", "dev", host.host_link])
    process.run(["ip", "link", "set", host.host_link, "up"])
    process.run([*netns_run, "addr", "add", f"{host.address}/24", "dev", "eth0"])
    process.run([*netns_run, "link", "set", "eth0", "up"])
    process.run([*netns_run, "link", "set", "lo", "up"])
    process.run([*netns_run, "route", "add", "default", "via", host.gateway])


def remove(host: LabHost) -> None:
    """Delete the namespace and the veth pair; absent ones are fine."""
    if host.netns in namespaces():
        process.run(["ip", "netns", "del", host.netns])
    # Deleting the namespace takes the veth pair with it, asynchronously: the link may vanish meanwhile.
    if host.host_link in links():
        process.run(["ip", "link", "del", host.host_link], check=False)


def namespaces() -> set[str]:
    listing = process.output(["ip", "netns", "list"])
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


def links() -> set[str]:
    return _links_of(None)


def _links_of(netns: str | None) -> set[str]:
    """The links of a namespace (None: this machine's own)."""
    listing = process.output(["ip", *(["-n", netns] if netns else []), "-o", "link", "show"])
    names = set()
    for line in listing.splitlines():
        # "12: djlab1@if2: <BROADCAST,...>": the name ends at '@' or ':'.
        name = line.split(":", 2)[1].strip().split("@")[0]
        names.add(name)
    return names


def lab_namespaces(layout: LabLayout) -> dict[str, int]:
    """This lab's namespaces, with the index of the host each belongs to."""
    found = {name: layout.index_of_namespace(name) for name in namespaces()}
    return {name: index for name, index in found.items() if index is not None}


def lab_links(layout: LabLayout) -> dict[str, int]:
    """This lab's host-side veth links, with the index of the host each belongs to."""
    found = {name: layout.index_of_link(name) for name in links()}
    return {name: index for name, index in found.items() if index is not None}
