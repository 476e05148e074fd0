"""The `remediate` command line."""
