"""The `socp` command line: one Click group, one module per command."""
