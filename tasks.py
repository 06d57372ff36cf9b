"""Invoke entry point: `inv --list` shows djdeploy's tasks."""

from djdeploy.tasks import namespace

ns = namespace
