"""Fixes and additions to moto, so the emulated AWS behaves as AWS documents where the app relies
on it. Each module installs itself into moto with ``install()`` (or named helpers) before moto
serves a request."""
