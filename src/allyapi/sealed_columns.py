"""Every sealed (encrypted at rest) column, in one place. A domain that adds a sealed
column appends one line here; a test fails while a ``*_sealed`` column is missing
(tests/jobs/test_rotate_keys.py).

- ``SEALED_COLUMNS``: sealed directly under the configured data keys; ``allyapi rotate-keys``
  re-seals them under the newest key. Among them the per-request data keys, which is why a
  rotation is cheap: a request's content is not re-encrypted, only its small key.
- ``REQUEST_SEALED_COLUMNS``: sealed with their request's own data key
  (contact_requests/sealing.py); a rotation never touches them, except to convert values
  sealed before data keys existed (contact_requests/rotation.py).
"""

from __future__ import annotations

from allyapi.contact_requests.models import ContactMessage, ContactRequest, ContactRequestKey
from allyapi.core.db.models import table_of
from allyapi.core.privacy.rotation import SealedColumn
from allyapi.feedback.models import ProgramFeedback, RequestFeedback
from allyapi.scim.models import AllyAccount
from allyapi.webhooks.models import WebhookSubscription

SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn(
        table_of(ContactRequestKey), "key_sealed", "contact_request_keys", "key", "request_id"
    ),
    SealedColumn(table_of(RequestFeedback), "comment_sealed", "request_feedback", "comment"),
    SealedColumn(table_of(ProgramFeedback), "comment_sealed", "program_feedback", "comment"),
    SealedColumn(table_of(WebhookSubscription), "secret_sealed", "webhook_subscriptions", "secret"),
    SealedColumn(table_of(AllyAccount), "user_name_sealed", "ally_accounts", "user_name"),
    SealedColumn(table_of(AllyAccount), "external_id_sealed", "ally_accounts", "external_id"),
)

REQUEST_SEALED_COLUMNS: tuple[SealedColumn, ...] = (
    SealedColumn(table_of(ContactRequest), "message_sealed", "contact_requests", "message"),
    SealedColumn(
        table_of(ContactRequest), "contact_detail_sealed", "contact_requests", "contact_detail"
    ),
    SealedColumn(table_of(ContactRequest), "alias_sealed", "contact_requests", "alias"),
    SealedColumn(table_of(ContactMessage), "body_sealed", "contact_messages", "body"),
)
