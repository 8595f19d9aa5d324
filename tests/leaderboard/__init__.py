"""Tests of turngym.leaderboard.

A package, so that its test_cli.py does not clash with tests/test_cli.py.
"""
