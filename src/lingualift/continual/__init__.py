"""COMPASS-ECDA: drift monitoring, continual updates and a gate (placeholder, filled below)."""
