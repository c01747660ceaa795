"""The Cloud Manager: the API's database and app, the ``cloud`` bus queue, the sweeps.

Handlers are thin: each hands its message to ``services.updates``. Background
work: the deadline sweep (``services.reconciler``) and forgetting old idempotency
keys.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from cloud_manager import db
from cloud_manager.api import create_app
from cloud_manager.context import CloudContext
from cloud_manager.db.models import ProcessedMessage
from cloud_manager.identity import bootstrap as identity_bootstrap
from cloud_manager.identity import tokens
from cloud_manager.services import quotas, reconciler, updates
from image_store.client import ImageStoreClient
from ironbark.config import Config
from ironbark.periodic import Periodic
from message_bus import Bus
from message_bus.idempotency import SqlStore
from message_bus.messages import GroupSummary, InstanceUpdate, PowerStateSync

CLOUD = "cloud"

class CloudManager:
    def __init__(self, config: Config, bus: Bus, engine: sa.Engine,
                 images: ImageStoreClient | None = None):
        """``images``: the image store's client; by default built from ``[image_store]``
        (the all-in-one passes its own, as its store listens on a port chosen at start)."""
        self.config, self.bus, self.engine = config, bus, engine
        # Each session knows this cloud's default quotas (several clouds may share a
        # process in tests, so they are not a module global).
        self.sessions = sessionmaker(engine, expire_on_commit=False, info={
            "quota_defaults": quotas.merged_defaults(config.cloud.quota_defaults)})
        if images is None:
            assert config.image_store.url is not None and config.image_store.token is not None
            images = ImageStoreClient(config.image_store.url, config.image_store.token)
        self.ctx = CloudContext(config, self.sessions, bus, images)
        self._keys = SqlStore(engine, ProcessedMessage.__table__)
        self._periodic: list[Periodic] = []

    def migrate(self) -> None:
        """Bring the schema up to date and make sure the first admin exists."""
        db.migrate(self.engine)
        with self.sessions.begin() as session:
            identity_bootstrap.ensure(session, self.config.identity)

    def app(self) -> Flask:
        return create_app(self.ctx)

    def register(self) -> None:
        ctx = self.ctx
        self.bus.serve(
            CLOUD,
            {
                InstanceUpdate: lambda m: updates.apply_update(ctx, m),
                PowerStateSync: lambda m: updates.apply_power_sync(ctx, m),
                GroupSummary: lambda m: updates.apply_summary(ctx, m),
            },
            workers=16, idempotency=self._keys, transient=(OperationalError,),
        )

    def start(self) -> None:
        self._periodic = [
            Periodic("reconciler", self.config.cloud.reconcile_interval,
                     lambda: reconciler.sweep(self.ctx), run_now=False),
            Periodic("cloud-prune", 3600.0, self._keys.prune_old),
            Periodic("token-prune", 3600.0, self._prune_tokens),
        ]
        for job in self._periodic:
            job.start()

    def _prune_tokens(self) -> None:
        with self.sessions.begin() as session:
            tokens.prune(session)

    def stop(self) -> None:
        for job in self._periodic:
            job.stop()
        self.ctx.images.close()
