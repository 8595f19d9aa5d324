"""Tests of turngym.server.

A package, so that its test_cli.py does not clash with tests/test_cli.py.
"""
