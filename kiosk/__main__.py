"""``python -m kiosk``: the same as the ``kiosk`` console script, and how ``kiosk run``
starts its core process (``kiosk core``: straight to :mod:`kiosk.service.core`, without
loading the command line's modules first)."""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["core"]:
    from kiosk.service import core

    sys.exit(core.main(sys.argv[2:]))

from kiosk import cli

sys.exit(cli.main())
