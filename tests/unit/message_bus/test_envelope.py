"""The envelope: encode and decode every message, and reject what cannot be trusted."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from message_bus import messages as m
from message_bus.envelope import Envelope, Message, decode, encode, registry
from message_bus.errors import MessageRejected
from message_bus.lifecycle import Action, Event, PowerState
from tests.unit.message_bus.samples import FLAVOR, IMAGE, INSTANCE, MUTATING, TASK, samples

SAMPLES = samples()
NAMES = sorted(SAMPLES)


def _wire(message: Message, **kwargs: Any) -> dict[str, Any]:
    """Encode as a sender does, then through JSON as the transport does."""
    return json.loads(json.dumps(encode(message, request_id="req-1", sender="test", **kwargs)))


def _rejected(payload: Any) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        decode(payload)
    return info.value


def test_every_registered_message_has_a_sample() -> None:
    assert sorted(registry()) == NAMES
    for name, sample in SAMPLES.items():
        assert registry()[name] is type(sample)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name: str) -> None:
    sample = SAMPLES[name]
    envelope, decoded = decode(_wire(sample))
    assert type(decoded) is type(sample)
    assert decoded == sample
    assert envelope.name == name
    assert envelope.version == "{}.{}".format(*type(sample).VERSION)
    assert envelope.request_id == "req-1"
    assert envelope.sender == "test"
    assert envelope.idempotency_key == sample.idempotency_key()
    assert envelope.expires_at is None
    assert not envelope.expired()


def test_encode_fills_the_envelope() -> None:
    before = time.time()
    payload = encode(SAMPLES["spawn"], request_id=None, sender="group.rack1", ttl=30.0)
    assert set(payload) == {"name", "version", "id", "request_id", "idempotency_key",
                            "sent_at", "expires_at", "sender", "body"}
    assert payload["name"] == "spawn"
    assert payload["version"] == "1.1"
    assert payload["request_id"] is None
    assert payload["sender"] == "group.rack1"
    assert before <= payload["sent_at"] <= time.time()
    assert payload["expires_at"] == pytest.approx(payload["sent_at"] + 30.0)
    assert payload["body"]["flavor"] == FLAVOR.model_dump()
    assert payload["id"] != encode(SAMPLES["spawn"], request_id=None, sender="x")["id"]


def test_expiry() -> None:
    envelope, _ = decode(_wire(SAMPLES["list_hosts"], ttl=5.0))
    assert envelope.expires_at is not None
    assert not envelope.expired()
    assert envelope.expired(now=envelope.expires_at + 0.001)
    assert not envelope.expired(now=envelope.expires_at - 0.001)


def test_an_explicit_idempotency_key_wins() -> None:
    payload = encode(SAMPLES["spawn"], request_id=None, sender="x", idempotency_key="mine")
    assert payload["idempotency_key"] == "mine"
    payload = encode(SAMPLES["list_hosts"], request_id=None, sender="x", idempotency_key="k")
    assert payload["idempotency_key"] == "k"


# --- what a receiver refuses -----------------------------------------------------------


def test_unknown_name_is_rejected() -> None:
    payload = _wire(SAMPLES["spawn"])
    payload["name"] = "launch_missiles"
    exc = _rejected(payload)
    assert exc.name == "launch_missiles"
    assert "launch_missiles" in str(exc)
    assert "unknown message name" in str(exc)


@pytest.mark.parametrize("version", ["2.0", "0.9", "2.1", "10.0"])
def test_unknown_major_version_is_rejected(version: str) -> None:
    payload = _wire(SAMPLES["power_action"])
    payload["version"] = version
    exc = _rejected(payload)
    assert exc.name == "power_action"
    assert "power_action" in str(exc)
    assert version in str(exc)
    assert "1.x" in str(exc)


@pytest.mark.parametrize("version", ["one.zero", "", "v1.0", "x"])
def test_bad_version_string_is_rejected(version: str) -> None:
    payload = _wire(SAMPLES["destroy"])
    payload["version"] = version
    exc = _rejected(payload)
    assert exc.name == "destroy"
    assert "destroy" in str(exc)
    assert "bad version" in str(exc)


@pytest.mark.parametrize("missing", ["name", "version", "id", "sent_at", "body"])
def test_envelope_missing_a_field_is_rejected(missing: str) -> None:
    payload = _wire(SAMPLES["delete_instance"])
    del payload[missing]
    exc = _rejected(payload)
    assert "malformed envelope" in str(exc)
    if missing != "name":
        assert exc.name == "delete_instance"
        assert "delete_instance" in str(exc)
        assert missing in str(exc)


@pytest.mark.parametrize("payload", [None, "spawn", 42, ["spawn", "1.0"], b"{}"])
def test_envelope_that_is_not_a_dict_is_rejected(payload: Any) -> None:
    exc = _rejected(payload)
    assert exc.name == "?"
    assert "malformed envelope" in str(exc)


def test_envelope_with_a_body_that_is_not_an_object_is_rejected() -> None:
    payload = _wire(SAMPLES["spawn"])
    payload["body"] = "a string"
    exc = _rejected(payload)
    assert exc.name == "spawn"
    assert "malformed envelope" in str(exc)
    assert "body" in str(exc)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("spawn", "flavor", "m1.small"),
        ("spawn", "instance_id", 12345),
        ("build_instance", "image", ["img-1"]),
        ("instance_event", "observed_at", "yesterday"),
        ("instance_event", "event", "exploded"),
        ("domain_report", "power_state", "on fire"),
        ("host_report", "domains", {"instance_id": INSTANCE}),
        ("group_summary", "hosts_up", "many"),
    ],
)
def test_body_of_the_wrong_type_is_rejected_naming_message_and_field(
    name: str, field: str, value: Any
) -> None:
    payload = _wire(SAMPLES[name])
    payload["body"][field] = value
    exc = _rejected(payload)
    assert exc.name == name
    assert name in str(exc)
    assert "malformed body" in str(exc)
    assert field in str(exc)


def test_body_missing_a_required_field_is_rejected() -> None:
    payload = _wire(SAMPLES["instance_update"])
    del payload["body"]["task_id"]
    exc = _rejected(payload)
    assert exc.name == "instance_update"
    assert "task_id" in str(exc)


def test_body_breaking_a_constraint_is_rejected() -> None:
    payload = _wire(SAMPLES["build_instance"])
    payload["body"]["flavor"]["vcpus"] = 0
    exc = _rejected(payload)
    assert "build_instance" in str(exc)
    assert "flavor.vcpus" in str(exc)


def test_newer_minor_version_with_an_extra_field_is_accepted() -> None:
    sample = SAMPLES["instance_event"]
    payload = _wire(sample)
    payload["version"] = "1.7"
    payload["body"]["cpu_seconds"] = 12.5
    payload["body"]["flavor"] = {"name": "future"}
    payload["trace_parent"] = "00-abc-def-01"  # a newer envelope field, too
    envelope, message = decode(payload)
    assert envelope.version == "1.7"
    assert message == sample
    assert not hasattr(message, "cpu_seconds")
    assert "cpu_seconds" not in message.model_dump()


def test_a_name_defined_twice_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="'spawn' is defined twice"):

        class AnotherSpawn(Message):
            NAME: ClassVar[str] = "spawn"
            instance_id: str

    assert registry()["spawn"] is m.Spawn


def test_an_intermediate_class_without_a_name_is_not_registered() -> None:
    before = registry()

    class _Abstract(Message):
        pass

    class _SpawnVariant(m.Spawn):  # inherits NAME but does not define it
        pass

    assert registry() == before


def test_messages_are_immutable() -> None:
    with pytest.raises(ValidationError):
        SAMPLES["spawn"].task_id = "other"  # type: ignore[misc]


def test_envelope_model_ignores_unknown_fields() -> None:
    payload = _wire(SAMPLES["list_hosts"])
    payload["x-future"] = 1
    envelope = Envelope.model_validate(payload)
    assert envelope.name == "list_hosts"


# --- idempotency and ordering keys -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(MUTATING))
def test_mutating_casts_carry_a_stable_idempotency_key(name: str) -> None:
    sample = SAMPLES[name]
    assert type(sample).KIND == "cast"
    twin = type(sample).model_validate(sample.model_dump(mode="json"))
    assert twin == sample and twin is not sample
    first = encode(sample, request_id="req-1", sender="a")
    second = encode(twin, request_id="req-2", sender="b")
    assert first["id"] != second["id"]
    assert first["idempotency_key"] is not None
    assert first["idempotency_key"] == second["idempotency_key"]
    _, redelivered = decode(json.loads(json.dumps(first)))
    assert redelivered.idempotency_key() == first["idempotency_key"]


def test_only_mutating_casts_carry_an_idempotency_key() -> None:
    keyed = {name for name, sample in SAMPLES.items() if sample.idempotency_key() is not None}
    assert keyed == MUTATING


def test_idempotency_keys_tell_logical_messages_apart() -> None:
    other_task = "7d1b9c2e-0000-4000-8000-000000000099"
    for name in ("instance_action", "delete_instance", "power_action", "destroy",
                 "instance_event", "instance_update"):
        sample = SAMPLES[name]
        changed = sample.model_copy(update={"task_id": other_task})
        assert changed.idempotency_key() != sample.idempotency_key(), name
    for name in ("build_instance", "spawn"):  # one build per instance, whatever the task
        sample = SAMPLES[name]
        assert sample.model_copy(update={"task_id": other_task}).idempotency_key() == (
            sample.idempotency_key())
        assert sample.model_copy(update={"instance_id": "other"}).idempotency_key() != (
            sample.idempotency_key())
    event = SAMPLES["instance_event"]
    assert event.model_copy(update={"event": Event.ACTION_FAILED}).idempotency_key() != (
        event.idempotency_key())
    update = SAMPLES["instance_update"]
    assert update.model_copy(update={"event": Event.BUILD_FAILED}).idempotency_key() != (
        update.idempotency_key())
    # the key of a power action names its task, not the action, so a retry is the same
    action = SAMPLES["instance_action"]
    assert action.model_copy(update={"action": Action.START}).idempotency_key() == (
        action.idempotency_key())


def test_ordering_keys() -> None:
    per_instance = {"build_instance", "instance_action", "delete_instance", "describe_instance",
                    "spawn", "power_action", "destroy", "describe_domain", "instance_event",
                    "instance_update", "snapshot_instance", "snapshot_disk"}
    for name in per_instance:
        assert SAMPLES[name].ordering_key() == INSTANCE, name
    assert SAMPLES["host_report"].ordering_key() == "host:hv1"
    assert SAMPLES["group_summary"].ordering_key() == "group:rack1"
    assert SAMPLES["list_hosts"].ordering_key() is None
    assert SAMPLES["get_console_output"].ordering_key() is None  # never waits behind a task
    assert SAMPLES["power_state_sync"].ordering_key() is None


# --- power actions ---------------------------------------------------------------------

POWER = sorted(m.POWER_ACTIONS)


def test_power_actions_are_every_action_but_create_snapshot_and_delete() -> None:
    assert set(Action) - m.POWER_ACTIONS == {Action.CREATE, Action.SNAPSHOT, Action.DELETE}


@pytest.mark.parametrize("cls", [m.PowerAction, m.InstanceAction])
def test_power_messages_schema_lists_the_power_actions_only(cls: type[Message]) -> None:
    """So that a new non-power action does not change these messages' contract."""
    schema = cls.model_json_schema()["properties"]["action"]
    assert schema == {"type": "string", "enum": sorted(a.value for a in m.POWER_ACTIONS)}


@pytest.mark.parametrize("cls", [m.PowerAction, m.InstanceAction])
def test_power_messages_accept_every_power_action(cls: type[Message]) -> None:
    for action in POWER:
        msg = cls(instance_id=INSTANCE, action=action, task_id=TASK)  # type: ignore[call-arg]
        assert msg.action is action  # type: ignore[attr-defined]
        assert cls.model_validate({"instance_id": INSTANCE, "action": action.value,
                                   "task_id": TASK}) == msg


@pytest.mark.parametrize("cls", [m.PowerAction, m.InstanceAction])
@pytest.mark.parametrize("action", [Action.CREATE, Action.DELETE, Action.SNAPSHOT, "create",
                                    "delete", "snapshot", "fly"])
def test_power_messages_refuse_other_actions(cls: type[Message], action: Any) -> None:
    with pytest.raises(ValidationError):
        cls(instance_id=INSTANCE, action=action, task_id=TASK)  # type: ignore[call-arg]
    payload = _wire(cls(instance_id=INSTANCE, action=Action.STOP,  # type: ignore[call-arg]
                        task_id=TASK))
    payload["body"]["action"] = str(action)
    exc = _rejected(payload)
    assert exc.name == cls.NAME
    assert "action" in str(exc)


# --- calls and replies -----------------------------------------------------------------


def test_every_call_names_a_registered_reply() -> None:
    kinds = {name: type(sample).KIND for name, sample in SAMPLES.items()}
    assert set(kinds.values()) == {"call", "cast", "event", "reply"}
    replies = set()
    for name, sample in SAMPLES.items():
        cls = type(sample)
        if cls.KIND == "call":
            assert cls.REPLY is not None, name
            assert cls.REPLY.KIND == "reply", name
            assert registry()[cls.REPLY.NAME] is cls.REPLY
            replies.add(cls.REPLY.NAME)
        else:
            assert cls.REPLY is None, name
    assert replies == {name for name, kind in kinds.items() if kind == "reply"}


def test_optional_fields_default() -> None:
    update = SAMPLES["instance_update"]
    assert isinstance(update, m.InstanceUpdate)
    assert (update.host, update.power_state, update.reason, update.observed_at) == (
        None, None, "", None)
    report = SAMPLES["host_report"]
    assert isinstance(report, m.HostReport)
    assert report.unknown_domains == []
    spawn = m.Spawn(instance_id=INSTANCE, name="x", flavor=FLAVOR, image=IMAGE, task_id=TASK)
    assert spawn == SAMPLES["spawn"].model_copy(update={"name": "x"})
    assert m.DomainState(instance_id=INSTANCE, power_state="missing").power_state is (
        PowerState.MISSING)
