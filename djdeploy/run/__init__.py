"""Run control: one deploy at a time per host (lock), batches and restarts (rollout), status."""
