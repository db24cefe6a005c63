"""
Limits and defaults of the Cloudflare Queues HTTP API, as the client enforces them before sending.

Sizes use 1 KB = 1000 bytes, as Cloudflare does. Sources: Cloudflare's Queues limits page and API
reference (see ``docs/hook.md``).
"""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"

MAX_MESSAGE_BYTES = 128_000
#: The service counts about 100 bytes of internal metadata against each message's 128 KB.
MESSAGE_METADATA_BYTES = 100
#: The largest body (UTF-8 bytes of the text, or of the compact JSON) that fits in one message.
MAX_BODY_BYTES = MAX_MESSAGE_BYTES - MESSAGE_METADATA_BYTES
#: The largest batch-push request body, as serialized on the wire.
MAX_BATCH_BYTES = 256_000
MAX_BATCH_MESSAGES = 100
MAX_PULL_BATCH_SIZE = 100
MAX_VISIBILITY_TIMEOUT_MS = 43_200_000  # 12 hours
MAX_DELAY_SECONDS = 86_400  # 24 hours (docs before 2026 said 12 hours)
MAX_MAX_RETRIES = 100
#: How many lease ids (acks plus retries) one ack request carries; the API documents no maximum.
MAX_ACK_BATCH = 100
LIST_QUEUES_PER_PAGE = 100
#: Pages a queue listing reads at most (an account holds at most 10,000 queues).
MAX_LIST_PAGES = 200
