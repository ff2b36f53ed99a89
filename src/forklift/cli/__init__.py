"""forklift's command-line tool: one module per command, each a client of the faces."""
