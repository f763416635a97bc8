"""``python -m seamwatch`` runs the command line."""

from seamwatch.cli import main

main()
