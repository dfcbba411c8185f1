"""The graph backup: an asset that copies the configured namespace into a libSQL backup, its job and a daily schedule."""
