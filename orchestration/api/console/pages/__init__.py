"""The console's pages, one module per resource; each has a ``router``."""
