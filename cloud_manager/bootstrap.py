"""First-run content of a cloud: the classic flavors and the demo image.

Idempotent, so ``ironbark up`` runs it at every start and an operator may run
``ironbark-cloud-manager bootstrap`` as often as they like. The demo image goes
through the image store's HTTP API, like any upload, and has a fixed id, so every
cloud (and every restart) names it the same. It lives in the store only: the store
owns image records, and the API asks it.
"""

from __future__ import annotations

import io
import logging
import uuid

from sqlalchemy.orm import Session, sessionmaker

from cloud_manager.services import flavors
from image_store.client import ImageStoreClient, NotFound
from ironbark import demo_image

log = logging.getLogger(__name__)

DEMO_IMAGE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "https://ironbark.dev/images/demo"))


def seed(sessions: sessionmaker[Session], store: ImageStoreClient) -> None:
    """``store`` acts as the service itself (no caller), which may make a public image."""
    with sessions.begin() as session:
        flavors.seed_classic(session)
    _demo_image(store)


def _demo_image(store: ImageStoreClient) -> dict:
    try:
        record = store.get(DEMO_IMAGE_ID)
        if record["status"] == "active":
            return record
        store.delete(DEMO_IMAGE_ID)  # an upload that died half way: start over
    except NotFound:
        pass
    store.create(name="demo", disk_format="raw", visibility="public", image_id=DEMO_IMAGE_ID)
    record = store.upload(DEMO_IMAGE_ID, io.BytesIO(demo_image.build()))
    log.info("uploaded the demo image (%d bytes)", record["size"])
    return record
