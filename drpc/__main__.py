"""``python -m drpc`` runs the ``drpc`` command line."""

from drpc.cli import main

raise SystemExit(main())
