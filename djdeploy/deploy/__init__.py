"""Deploy and rollback: build, copy, plan, switch under the supervisor, health check, fleet batching."""
