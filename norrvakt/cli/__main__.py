"""`python -m norrvakt.cli`."""

from norrvakt.cli.main import main

main()
