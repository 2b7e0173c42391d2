"""``python -m cnnzoo`` runs the command-line interface."""

from cnnzoo.cli import main

raise SystemExit(main())
