"""``python -m thor`` is the ``thor`` command."""

from thor.cli import main

raise SystemExit(main())
