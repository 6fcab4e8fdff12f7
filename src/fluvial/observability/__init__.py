"""Rate-limited logging and metrics."""
