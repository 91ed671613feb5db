"""The JetStream key-value buckets of a cluster (leases, progress): opened, or made if missing."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue


async def open_bucket(js: JetStreamContext, config: js_api.KeyValueConfig) -> KeyValue:
    """The bucket, made if missing — also when several processes start at once and another
    one makes it between our look and our create."""
    try:
        return await js.key_value(config.bucket)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(config)
    except Exception:  # made meanwhile by another process (or truly failing: the look says which)
        return await js.key_value(config.bucket)
