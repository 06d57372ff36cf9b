"""Example Django site deployed with djdeploy."""
