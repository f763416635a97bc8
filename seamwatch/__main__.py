"""``python -m seamwatch`` runs the command line."""

from seamwatch.console import main

main()
