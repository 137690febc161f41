"""The Videsk QMS API: an async client, its typed answers, and the one place where HTTP
statuses and httpx errors become :mod:`kiosk.errors`.

- ``client.py``  :class:`QmsClient`: requests, retries, deadlines, status -> error mapping
- ``models.py``  the API's answers as typed models (queues, branches, forms, enqueue)

May import only the foundation (httpx and pydantic besides): the use cases call it.
"""

from __future__ import annotations

from kiosk.api.client import API_PREFIX, QmsClient, RetryPolicy, error_for_status
from kiosk.api.models import Branch, EnqueueResult, Form, FormField, FormSubmission, Queue

__all__ = [
    "API_PREFIX",
    "Branch",
    "EnqueueResult",
    "Form",
    "FormField",
    "FormSubmission",
    "QmsClient",
    "Queue",
    "RetryPolicy",
    "error_for_status",
]
