"""Stress runs that are not part of the default test run (see the README's "Stress runs")."""
