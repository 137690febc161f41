"""The device's side of the branch's hub (the relay; the contract is docs/hub.md).

- ``client.py``   :class:`HubClient`: the one HTTP client a core holds to the hub (number
  leases, ticket reports, this device's state, the branch's ledger; the calls' stream
  shares its connection pool), its errors mapped to :class:`kiosk.errors.HubError`.
- ``leases.py``   :class:`LeaseKeeper`: a block of numbers kept ahead per sequence, in the
  background (never on a tap's path), recorded in the journal before use.
- ``outbox.py``   :class:`ReportSender`: the tickets' reports delivered from the journal's
  outbox, at least once, with a growing wait while the hub is away.

May import: the foundation, ``kiosk.config`` and ``kiosk.store`` (never the UI's side).
The core imports it.
"""
