"""The control plane: ingest and routing, rejected events, run control, campaigns and their ticks, the
sweeper."""
