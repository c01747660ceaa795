"""The parts of the host's image cache (:class:`instance_manager.image_cache.ImageCache`).

Each module has one job: ``manifest`` checks what the store says an image is made of,
``index`` remembers sizes, recency and which instances use which base (SQLite, so it
outlives the process), ``chunks`` keeps verified encoded chunks on disk and fetches
the missing ones in parallel, ``assemble`` writes a base from chunks.
"""
