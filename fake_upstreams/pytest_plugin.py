"""Tapedeck's pytest plugin (registered through the ``pytest11`` entry point).

Fixtures for the fake upstreams arrive with the fake-upstreams work; this module must exist from
the start because the entry point is installed with the package.
"""
