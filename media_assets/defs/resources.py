"""Resources: where files land, where everything is stored, and the operator's policy."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from media_assets.media.policy import Policy, load_policy
from media_assets.storage import LocalInbox, LocalObjectStore


class MediaStorage(ConfigurableResource):
    """The content-addressed store, derivatives, quarantine, batch manifests and catalog."""

    root: str = Field(default="data/store", description="Folder that holds the store.")

    def store(self) -> LocalObjectStore:
        return LocalObjectStore(self.root)


class InboxResource(ConfigurableResource):
    """The folder that new files are dropped into."""

    root: str = Field(default="data/inbox", description="Folder watched by the inbox sensor.")

    def inbox(self) -> LocalInbox:
        return LocalInbox(self.root)


class PolicyResource(ConfigurableResource):
    """The policy file, read afresh by every run and tick (no deploy to change it)."""

    path: str = Field(default="policy.yaml", description="YAML policy; empty = defaults.")

    def load(self) -> Policy:
        return load_policy(self.path or None)
