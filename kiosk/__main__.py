"""``python -m kiosk``: the same as the ``kiosk`` console script, and how ``kiosk run``
starts its core process (``kiosk core``: straight to :mod:`kiosk.core.main`, without
loading the command line's modules first; ``kiosk demo`` starts ``kiosk demo-core``,
:mod:`kiosk.demo.core`, the same way)."""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["core"]:
    from kiosk.core import main as core

    sys.exit(core.main(sys.argv[2:]))
if sys.argv[1:2] == ["demo-core"]:
    from kiosk.demo import core as demo_core

    sys.exit(demo_core.main(sys.argv[2:]))

from kiosk import cli

sys.exit(cli.main())
