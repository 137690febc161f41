"""Pure Python both processes use to show things: what the UI process may import.

- ``outcomes.py``      what a tap comes to, and the views of a queue
- ``messages.py``      the one table of outcome -> the customer's words
- ``presentation.py``  cards' texts, freshness, out of service, the QR's modules
- ``forms.py``         a queue's form and the provider's field rules
- ``calling.py``       a call: "A-042 → Cabina 3", and how it is spoken
- ``speech.py``        espeak-ng on a worker, and the chime
- ``guidance.py``      what audio guidance says of each screen and item in focus
- ``sound.py``         whether a sound can be played here (asked of SDL, without Kivy)
- ``devicestate.py``   a device's state: what status.json, staff and the hub are told
- ``staffwords.py``    that state in the staff's words: rows, colours' levels, advice

May import only the foundation (no pydantic, httpx, SQLite or Kivy): the UI process
loads it at start.
"""
