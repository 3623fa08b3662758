"""The `ootd` command line (see cli/main.py)."""
