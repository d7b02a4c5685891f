"""Storage adapters (no dagster): an object-store-shaped interface and its implementations."""

from media_assets.core.store import Inbox, InboxEntry, ObjectStore
from media_assets.storage.local import LocalInbox, LocalObjectStore

__all__ = ["Inbox", "InboxEntry", "LocalInbox", "LocalObjectStore", "ObjectStore"]
