"""``python -m stalwart.cli``: the same as the ``stalwart`` command."""

from . import main

raise SystemExit(main())
