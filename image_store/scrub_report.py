"""The readable form of a scrub's result (``ironbark-image-store scrub``).

Operators read it after a disk scare, so it leads with the verdict and then lists
every damaged chunk with the images that need re-uploading.
"""

from __future__ import annotations

from typing import Any


def is_clean(result: dict[str, Any]) -> bool:
    """No corrupt and no missing chunk (removed orphans are housekeeping, not damage)."""
    return not result.get("corrupt") and not result.get("missing")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _address_of(item: Any) -> str:
    return item if isinstance(item, str) else str(item.get("address"))


def _images_of(item: Any) -> list[str]:
    return [] if isinstance(item, str) else [str(i) for i in item.get("images") or []]


def render(result: dict[str, Any]) -> str:
    corrupt = result.get("corrupt") or []
    missing = result.get("missing") or []
    verdict = ("clean" if is_clean(result)
               else f"DAMAGED: {len(corrupt)} corrupt, {len(missing)} missing chunk(s)")
    lines = [f"scrub: {verdict}",
             f"checked {result.get('checked', 0)} chunk(s), {_mib(result.get('bytes', 0))}",
             f"orphan chunk(s) removed: {result.get('orphans_removed', 0)}"]
    for title, items in (("corrupt", corrupt), ("missing", missing)):
        if items:
            lines.append(f"{title} chunk(s):")
        for item in items:
            images = _images_of(item)
            used_by = f"  used by image(s) {', '.join(images)}" if images else ""
            lines.append(f"  {_address_of(item)}{used_by}")
    if not is_clean(result):
        lines.append("re-upload the images named above (an upload holding a damaged chunk "
                     "rewrites it)")
    return "\n".join(lines)
