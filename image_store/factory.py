"""Building an :class:`ImageStore` from the ``[image_store]`` configuration section.

Everything the store needs is chosen here, once: the chunk backend (a directory
under ``data_dir``, or an S3 bucket with staging under ``data_dir``), the catalog
(``database_url``, migrated to the newest schema; SQLite under ``data_dir`` by
default) and the chunking policy and compression level. A bad combination fails
here with a ``ValueError`` naming the option, before anything is served.
"""

from __future__ import annotations

from pathlib import Path

from image_store import catalog
from image_store.backends.base import ChunkBackend
from image_store.backends.local import LocalBackend
from image_store.chunking import ChunkingPolicy, InvalidPolicy
from image_store.store import ImageStore
from ironbark import db
from ironbark.config import ImageStoreOptions


def _backend(options: ImageStoreOptions, data_dir: Path) -> ChunkBackend:
    if options.backend == "local":
        return LocalBackend(data_dir)
    from image_store.backends.s3 import S3Backend  # boto3 only when asked for

    return S3Backend(options.s3_endpoint, options.s3_bucket, options.s3_prefix,
                     options.s3_region, options.s3_access_key, options.s3_secret_key,
                     data_dir / "s3-staging")


def _policy(options: ImageStoreOptions) -> ChunkingPolicy:
    try:
        return ChunkingPolicy.from_options(options.chunking, options.chunk_avg_kib)
    except InvalidPolicy as exc:
        raise ValueError(f"image_store.chunk_avg_kib / chunking: {exc}") from None


def open_store(options: ImageStoreOptions, *, recover: bool = True) -> ImageStore:
    """The store the options describe, its catalog migrated and (unless ``recover`` is
    False, for a second process on a shared catalog) start-up recovery done."""
    if options.data_dir is None:
        raise ValueError("image_store.data_dir: must be set (ironbark.config fills it in "
                         "from the top-level data_dir)")
    data_dir = Path(options.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    policy = _policy(options)
    url = options.database_url or f"sqlite:///{data_dir / 'catalog.db'}"
    engine = db.create_engine(url)
    try:
        catalog.migrate(engine)
        backend = _backend(options, data_dir)
        return ImageStore(engine, backend, policy, options.compression_level,
                          recover=recover)
    except BaseException:
        engine.dispose()
        raise
