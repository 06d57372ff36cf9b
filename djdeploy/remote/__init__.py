"""The one place that runs commands: local processes, SSH to hosts (Remote) and HTTP probes of their sites."""
