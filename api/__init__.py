"""Thin Flask HTTP API over the ootd.* functions."""
