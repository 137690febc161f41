"""The use cases: what a device does for a customer and for staff.

- ``issuing.py``      a ticket: number, enqueue, print, journal (one use case for a tap,
                      the greeter, a form and the CLI)
- ``queues.py``       the branch's queues kept live, and the cards made from them
- ``formcatalog.py``  which queues need a form, learned ahead of time
- ``formflow.py``     a customer's form sent, then the ticket
- ``staff.py``        the staff PIN, session and lockout; a customer request checked
- ``clock.py``        the clock's second opinion (the API's ``Date``)
- ``health.py``       what staff must look at (journal, clock)
- ``ledger.py``       a day's tickets, from the journal
- ``cli_forms.py``    a form from a JSON file, for ``kiosk ticket --form-json``

May import :mod:`kiosk.api`, :mod:`kiosk.printing`, :mod:`kiosk.store`,
:mod:`kiosk.config`, :mod:`kiosk.view` and the foundation; never Kivy, the UI or the core.
"""
