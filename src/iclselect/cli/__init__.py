"""The `iclselect` command: argument wiring, options made from RunConfig, what it prints."""
