"""snc.backends: how IR graphs are computed or emitted (simulators, exporters)."""
