"""Behaviour of each API resource, written against :mod:`assistants_core.repository`."""
