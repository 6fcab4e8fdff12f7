"""The `fluvial` command line: thin — parse, call, format."""
