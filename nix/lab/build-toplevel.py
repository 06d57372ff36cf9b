"""Nix builder of a lab system: writes the toplevel described by the JSON in $specPath to $out."""

import json
import os
from pathlib import Path

spec = json.loads(Path(os.environ["specPath"]).read_text())
out = Path(os.environ["out"])

units = out / "etc" / "systemd" / "system"
units.mkdir(parents=True)
for name, text in spec["units"].items():
    (units / name).write_text(text)
# <target>.wants/, .requires/ and .upholds/ links, as NixOS makes them for wantedBy, requiredBy and upheldBy.
for kind, targets in spec["links"].items():
    for target, names in targets.items():
        directory = units / f"{target}.{kind}"
        directory.mkdir(exist_ok=True)
        for name in names:
            (directory / name).symlink_to(f"../{name}")

(out / "etc" / "caddy").mkdir()
(out / "etc" / "caddy" / "Caddyfile").write_text(spec["caddyfile"])
(out / "etc" / "djdeploy").mkdir()
(out / "etc" / "djdeploy" / "sites.json").write_text(json.dumps(spec["sites"], indent=2))
(out / "etc" / "djdeploy" / "static").mkdir()
for name, path in spec["static"].items():
    (out / "etc" / "djdeploy" / "static" / name).symlink_to(path)
(out / "etc" / "tmpfiles.d").mkdir()
(out / "etc" / "tmpfiles.d" / "lab.conf").write_text(spec["tmpfiles"])

commands = out / "sw" / "bin"
commands.mkdir(parents=True)
for name, target in spec["commands"].items():
    (commands / name).symlink_to(target)

(out / "bin").mkdir()
switch = out / "bin" / "switch-to-configuration"
switch.write_text("#!/usr/bin/python3\n" + Path(os.environ["switchScript"]).read_text())
switch.chmod(0o555)
# The lab's stage 2, where a NixOS toplevel has its stage-2 init.
init = out / "init"
init.write_text(Path(os.environ["stage2Script"]).read_text())
init.chmod(0o555)
(out / "lab-system.json").write_text(json.dumps(spec["system"], indent=2, sort_keys=True))
# As NixOS writes it: without a newline.
(out / "nixos-version").write_text(spec["version"])
