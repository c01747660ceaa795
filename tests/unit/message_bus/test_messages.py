"""Schema fingerprints of every bus message (the idea of Nova's test_objects.py).

A message's fields are a contract between tiers that are upgraded one at a time.
Changing them without bumping the message's VERSION breaks that contract silently;
this test makes it loud. When it fails: bump VERSION (minor for an added optional
field, major for anything a receiver of the old version cannot read), then put the
new fingerprint it prints in FINGERPRINTS.
"""

from __future__ import annotations

import hashlib
import json

import message_bus.messages  # noqa: F401  (registers every message)
from message_bus.envelope import Message, registry

FINGERPRINTS = {
    "build_instance": "1.2-ab877df0c4f7",
    "build_instances": "1.1-78a602a20157",
    "delete_instance": "1.0-90afd89b7f48",
    "console_output": "1.0-37806b9609cf",
    "describe_domain": "1.0-2fc4e713c6fe",
    "get_console_output": "1.0-52db03867eae",
    "describe_instance": "1.0-b8924d6b6161",
    "destroy": "1.0-5d2d77bf6f42",
    "domain_report": "1.0-a17349b23605",
    "group_summary": "1.1-5b382f77cf1c",
    "host.state_changed": "1.0-3d5a0cefe8ed",
    "host_list": "1.0-5e8012fffa98",
    "host_report": "1.0-aed91f64109e",
    "instance.state_changed": "1.0-2d509e7e3b7d",
    "instance_action": "1.1-5741023edadc",
    "instance_event": "1.0-8e44e33da5db",
    "instance_observation": "1.0-63eff5888f19",
    "instance_update": "1.0-a8fd7053a44e",
    "list_hosts": "1.0-09f11f47226f",
    "power_action": "1.1-ea3034c5ccc2",
    "power_state_sync": "1.0-c83dc849c93d",
    "snapshot_disk": "1.0-e8ec5617a2e3",
    "snapshot_instance": "1.0-df22530a03a5",
    "spawn": "1.1-7db9ef3e08a1",
}


def fingerprint(cls: type[Message]) -> str:
    schema = json.dumps(cls.model_json_schema(), sort_keys=True)
    digest = hashlib.sha256(schema.encode()).hexdigest()[:12]
    return "{}.{}-{}".format(*cls.VERSION, digest)


def product_messages() -> dict[str, type[Message]]:
    """The messages Ironbark defines (a test may register its own; they do not count)."""
    return {name: cls for name, cls in registry().items()
            if cls.__module__.split(".")[0] == "message_bus"}


def test_every_message_has_a_fingerprint() -> None:
    unknown = sorted(set(product_messages()) - set(FINGERPRINTS))
    assert not unknown, (
        "messages without a fingerprint: "
        + ", ".join(f"{name} ({fingerprint(product_messages()[name])})" for name in unknown)
        + "; add them to FINGERPRINTS in " + __name__
    )
    gone = sorted(set(FINGERPRINTS) - set(product_messages()))
    assert not gone, f"messages no longer defined: {', '.join(gone)}; remove their fingerprints"


def test_message_schemas_match_their_fingerprints() -> None:
    changed = []
    for name, cls in sorted(product_messages().items()):
        if name not in FINGERPRINTS:
            continue  # reported by test_every_message_has_a_fingerprint
        actual = fingerprint(cls)
        if actual != FINGERPRINTS[name]:
            changed.append(
                f"message {name} changed: bump its VERSION and update the fingerprint "
                f"(expected {FINGERPRINTS[name]}, now {actual})"
            )
    assert not changed, "\n".join(changed)


def test_fingerprint_sees_a_field_change_and_a_version_bump() -> None:
    """The fingerprint is not blind: adding a field or bumping VERSION changes it."""
    spawn = registry()["spawn"]
    base = fingerprint(spawn)
    schema = spawn.model_json_schema()
    schema["properties"]["extra"] = {"type": "string"}
    assert hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:12] != (
        base.split("-", 1)[1])

    class _Bumped(spawn):  # type: ignore[misc,valid-type]  (inherits NAME: not registered)
        VERSION = (1, 1)

    assert fingerprint(_Bumped).startswith("1.1-")
    assert fingerprint(_Bumped) != base
