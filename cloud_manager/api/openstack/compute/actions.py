"""``POST /compute/v2.1/servers/{id}/action``: one action per body, Nova's names.

Power actions go through ``services.servers.act`` (the lifecycle table decides;
409 ``conflictingRequest`` in a wrong state); ``createImage`` is the snapshot
workflow, ``os-getConsoleOutput`` the console read.
"""

from __future__ import annotations

from flask import Response, jsonify

from cloud_manager.api.openstack.common import base_url, caller, cloud, field, json_body
from cloud_manager.api.openstack.compute import blueprint
from cloud_manager.errors import BadInput
from cloud_manager.services import console, server_metadata, servers, snapshots
from message_bus.lifecycle import Action

_POWER = {"os-start": Action.START, "os-stop": Action.STOP, "pause": Action.PAUSE,
          "unpause": Action.UNPAUSE, "suspend": Action.SUSPEND, "resume": Action.RESUME}
KNOWN = (*_POWER, "reboot", "createImage", "os-getConsoleOutput")


@blueprint.post("/v2.1/servers/<server_id>/action")
def server_action(server_id: str) -> Response | tuple[str | Response, int]:
    body = json_body()
    if len(body) != 1 or next(iter(body)) not in KNOWN:
        raise BadInput(f"The request body must name exactly one action, one of "
                       f"{', '.join(KNOWN)}; got {', '.join(sorted(body)) or 'none'}",
                       field="action")
    name, args = next(iter(body.items()))
    if name in _POWER:
        if args is not None and not isinstance(args, dict):
            raise BadInput(f"Invalid input for field/attribute {name}: must be null or an "
                           f"object", field=name)
        servers.act(cloud(), caller(), server_id, _POWER[name])
        return "", 202
    if not isinstance(args, dict):
        raise BadInput(f"Invalid input for field/attribute {name}. Value: {args!r}. "
                       f"{args!r} is not of type 'object'", field=name)
    if name == "reboot":
        kind = field(args, "type", str, "reboot", required=True)
        if kind.upper() not in ("SOFT", "HARD"):
            raise BadInput(f"Invalid input for field/attribute type. Value: {kind}. "
                           f"'{kind}' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', "
                           f"'soft']", field="reboot.type")
        action = Action.REBOOT_HARD if kind.upper() == "HARD" else Action.REBOOT
        servers.act(cloud(), caller(), server_id, action)
        return "", 202
    if name == "createImage":
        image_name = field(args, "name", str, "createImage", required=True)
        metadata = server_metadata.check(args.get("metadata", {}), "createImage.metadata")
        _, image = snapshots.create_image(cloud(), caller(), server_id, name=image_name,
                                          properties=metadata)
        answer = Response(status=202)
        answer.headers["Location"] = f"{base_url()}/image/v2/images/{image['id']}"
        return answer
    length = args.get("length")
    if isinstance(length, str) and length.lstrip("-").isdigit():
        length = int(length)  # 2.1 takes "50" as well as 50
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < -1):
        raise BadInput(f"Invalid input for field/attribute length. Value: {length!r}. "
                       f"must be an integer >= -1", field="os-getConsoleOutput.length")
    lines = None if length in (None, -1) else console.parse_lines(str(length))
    return jsonify({"output": console.read(cloud(), caller(), server_id, lines)})
