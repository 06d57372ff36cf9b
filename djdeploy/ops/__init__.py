"""Operating deployed hosts: status, verify, logs, manage, and their rendering."""
