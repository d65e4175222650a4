"""What an operator reads: Prometheus metrics and structured log context."""
