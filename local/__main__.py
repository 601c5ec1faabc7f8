"""``python -m local``: serve the local stack on HOST:PORT (what ``make dev`` runs)."""

from .stack import main

main()
