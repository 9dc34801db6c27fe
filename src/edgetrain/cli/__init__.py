"""The `edgetrain` command line: one module per subcommand (see cli/main.py)."""
