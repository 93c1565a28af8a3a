"""``python -m local_stack``: see ``local_stack.cli``."""

from local_stack.cli import main

raise SystemExit(main())
