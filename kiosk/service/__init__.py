"""Use cases: issue a ticket, keep the queues live, run the headless demo.

Import the modules themselves (``kiosk.service.issuing``, ``kiosk.service.queues``...):
this package imports nothing, so that the UI process can use its light modules
(outcomes, presentation, messages, link) without loading the core's libraries.
"""
