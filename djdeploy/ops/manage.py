"""Django management commands of a deployed site, run on its host through `manage-<site>`."""

from __future__ import annotations

from collections.abc import Sequence

from djdeploy.host.sites import Site
from djdeploy.remote.ssh import Remote


def run(remote: Remote, site: Site, arguments: Sequence[str], *, terminal: bool) -> int:
    """Run `manage-<site> ARGUMENTS` and return its exit status.

    Each argument reaches Django as one word, whatever it holds. The manage command switches to the site's
    user itself. terminal: connect the local terminal (a TTY, keyboard input), for `shell` or
    `createsuperuser`; otherwise the output is streamed.
    """
    result = remote.run(
        [site.manage_command, *arguments],
        check=False,
        interactive=terminal,
        stream=not terminal,
        # Without a terminal nobody could answer the manage command's own sudo prompt (an SSH user other than
        # root and the site's user): start it as root, which sudo's password from the inventory allows.
        privileged=not terminal,
    )
    return result.exit_code
