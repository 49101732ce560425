"""Running Hubkeeper in production: leader election, metrics, health probes, JSON logs."""
