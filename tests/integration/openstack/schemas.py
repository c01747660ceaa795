"""JSON schemas of response bodies, written from the upstream API references (Compute
at microversion 2.1, Image v2, Network v2.0, Identity v3): every documented key must
be present with its documented type, and no undocumented key may appear in a
documented object (``obj`` closes each object)."""

from __future__ import annotations

from typing import Any

S: dict[str, Any] = {"type": "string"}
N: dict[str, Any] = {"type": "null"}
I: dict[str, Any] = {"type": "integer"}  # noqa: E741
B: dict[str, Any] = {"type": "boolean"}
F: dict[str, Any] = {"type": "number"}
SN = {"type": ["string", "null"]}
IN = {"type": ["integer", "null"]}


def obj(optional: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    props = {k.replace("__", ":").replace("_DASH_", "-"): v for k, v in props.items()}
    return {"type": "object", "properties": props, "additionalProperties": False,
            "required": [k for k in props if k not in optional]}


def arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def anymap(values: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": values}


LINK = obj(("type",), rel=S, href=S, type=S)
LINKS = arr(LINK)

# --- Compute 2.1 ---------------------------------------------------------------------------

ADDRESS = obj(version=I, addr=S, **{"OS-EXT-IPS:type": S, "OS-EXT-IPS-MAC:mac_addr": S})
SERVER = obj(
    ("OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:hypervisor_hostname",
     "OS-EXT-SRV-ATTR:instance_name", "fault"),
    accessIPv4=S, accessIPv6=S, addresses=anymap(arr(ADDRESS)), config_drive=S, created=S,
    flavor=obj(id=S, links=LINKS), hostId=S, id=S, image=obj(id=S, links=LINKS),
    key_name=SN, links=LINKS, metadata=anymap(S), name=S, progress=I,
    security_groups=arr(obj(name=S)), status=S, tenant_id=S, updated=S, user_id=S,
    **{"OS-DCF:diskConfig": S, "OS-EXT-AZ:availability_zone": S,
       "OS-EXT-SRV-ATTR:host": SN, "OS-EXT-SRV-ATTR:hypervisor_hostname": SN,
       "OS-EXT-SRV-ATTR:instance_name": S, "OS-EXT-STS:power_state": I,
       "OS-EXT-STS:task_state": SN, "OS-EXT-STS:vm_state": S,
       "os-extended-volumes:volumes_attached": arr(obj(id=S)),
       "OS-SRV-USG:launched_at": SN, "OS-SRV-USG:terminated_at": SN,
       "fault": obj(("details",), code=I, created=S, message=S, details=S)})
SERVER_BRIEF = obj(id=S, links=LINKS, name=S)
SERVERS = obj(("servers_links",), servers=arr(SERVER_BRIEF), servers_links=LINKS)
SERVERS_DETAIL = obj(("servers_links",), servers=arr(SERVER), servers_links=LINKS)
SERVER_CREATED = obj(server=obj(id=S, links=LINKS, security_groups=arr(obj(name=S)),
                                **{"OS-DCF:diskConfig": S}))
FLAVOR = obj(id=S, name=S, ram=I, disk=I, vcpus=I, links=LINKS, rxtx_factor=F,
             swap={"type": ["string", "integer"]},
             **{"OS-FLV-EXT-DATA:ephemeral": I, "OS-FLV-DISABLED:disabled": B,
                "os-flavor-access:is_public": B})
FLAVORS = obj(flavors=arr(obj(id=S, links=LINKS, name=S)))
FLAVORS_DETAIL = obj(flavors=arr(FLAVOR))
KEYPAIRS = obj(keypairs=arr(obj(keypair=obj(fingerprint=S, name=S, public_key=S))))
KEYPAIR_CREATED = obj(keypair=obj(("private_key",), fingerprint=S, name=S, public_key=S,
                                  user_id=S, private_key=S))
KEYPAIR = obj(keypair=obj(created_at=S, deleted=B, deleted_at=SN, fingerprint=S, id=I,
                          name=S, public_key=S, updated_at=SN, user_id=S))
SERVER_GROUP = obj(id=S, name=S, policies=arr(S), members=arr(S), metadata=anymap(S))
SERVER_GROUPS = obj(server_groups=arr(SERVER_GROUP))
ZONES = obj(availabilityZoneInfo=arr(obj(zoneName=S, zoneState=obj(available=B),
                                         hosts={"type": ["object", "null"]})))
LIMITS = obj(limits=obj(rate=arr({}), absolute=obj(**{k: I for k in (
    "maxImageMeta", "maxPersonality", "maxPersonalitySize", "maxSecurityGroupRules",
    "maxSecurityGroups", "maxServerGroupMembers", "maxServerGroups", "maxServerMeta",
    "maxTotalCores", "maxTotalFloatingIps", "maxTotalInstances", "maxTotalKeypairs",
    "maxTotalRAMSize", "totalCoresUsed", "totalFloatingIpsUsed", "totalInstancesUsed",
    "totalRAMUsed", "totalSecurityGroupsUsed", "totalServerGroupsUsed")})))
QUOTA_KEYS = ("cores", "fixed_ips", "floating_ips", "injected_file_content_bytes",
              "injected_file_path_bytes", "injected_files", "instances", "key_pairs",
              "metadata_items", "ram", "security_group_rules", "security_groups",
              "server_group_members", "server_groups")
QUOTA_SET = obj(quota_set=obj(id=S, **dict.fromkeys(QUOTA_KEYS, I)))
QUOTA_DETAIL = obj(quota_set=obj(id=S, **{k: obj(in_use=I, limit=I, reserved=I)
                                          for k in QUOTA_KEYS}))
HYPERVISOR_BRIEF = obj(id=I, hypervisor_hostname=S, state=S, status=S)
HYPERVISOR = obj(
    id=I, hypervisor_hostname=S, state=S, status=S, cpu_info=S, current_workload=I,
    disk_available_least=I, free_disk_gb=I, free_ram_mb=I, host_ip=S, hypervisor_type=S,
    hypervisor_version=I, local_gb=I, local_gb_used=I, memory_mb=I, memory_mb_used=I,
    running_vms=I, service=obj(host=S, id=I, disabled_reason=SN), vcpus=I, vcpus_used=I)
HYPERVISORS = obj(hypervisors=arr(HYPERVISOR_BRIEF))
HYPERVISORS_DETAIL = obj(hypervisors=arr(HYPERVISOR))
STATISTICS = obj(hypervisor_statistics=obj(**{k: I for k in (
    "count", "current_workload", "disk_available_least", "free_disk_gb", "free_ram_mb",
    "local_gb", "local_gb_used", "memory_mb", "memory_mb_used", "running_vms", "vcpus",
    "vcpus_used")}))
SERVICES = obj(services=arr(obj(id=I, binary=S, disabled_reason=SN, host=S, state=S,
                                status=S, updated_at=SN, zone=S)))
SERVER_USAGE = obj(ended_at=SN, flavor=S, hours=F, instance_id=S, local_gb=I, memory_mb=I,
                   name=S, started_at=S, state=S, tenant_id=S, uptime=I, vcpus=I)
TENANT_USAGE = obj(("server_usages",), tenant_id=S, total_hours=F, total_local_gb_usage=F,
                   total_memory_mb_usage=F, total_vcpus_usage=F, start=S, stop=S,
                   server_usages=arr(SERVER_USAGE))
USAGES = obj(tenant_usages=arr(TENANT_USAGE))
COMPUTE_VERSION = obj(version=obj(id=S, status=S, version=S, min_version=S, updated=S,
                                  links=LINKS, **{"media-types": arr(obj(base=S, type=S))}))

# --- Image v2 ------------------------------------------------------------------------------

IMAGE = {**obj(id=S, name=SN, status=S, visibility=S, protected=B, checksum=SN,
               os_hash_algo=SN, os_hash_value=SN, owner=SN, size=IN, virtual_size=IN,
               min_disk=I, min_ram=I, disk_format=SN, container_format=SN, created_at=S,
               updated_at=S, tags=arr(S), self=S, file=S, schema=S, os_hidden=B),
         "additionalProperties": S}  # Glance shows an image's own properties beside these
IMAGES = obj(("next",), images=arr(IMAGE), schema=S, first=S, next=S)

# --- Network v2.0 --------------------------------------------------------------------------

_STD = {"description": S, "tags": arr(S), "created_at": S, "updated_at": S,
        "revision_number": I}
NETWORK = obj(id=S, name=S, tenant_id=S, project_id=S, admin_state_up=B, mtu=I, status=S,
              subnets=arr(S), shared=B, availability_zone_hints=arr(S),
              availability_zones=arr(S), ipv4_address_scope=SN, ipv6_address_scope=SN,
              port_security_enabled=B, l2_adjacency=B,
              **{"router:external": B}, **_STD)
SUBNET = obj(id=S, name=S, tenant_id=S, project_id=S, network_id=S, ip_version=I, cidr=S,
             gateway_ip=SN, enable_dhcp=B, allocation_pools=arr(obj(start=S, end=S)),
             dns_nameservers=arr(S), host_routes=arr({}), ipv6_ra_mode=SN,
             ipv6_address_mode=SN, subnetpool_id=SN, service_types=arr(S), **_STD)
PORT = obj(id=S, name=S, network_id=S, tenant_id=S, project_id=S, mac_address=S,
           admin_state_up=B, status=S, device_id=S, device_owner=S,
           fixed_ips=arr(obj(subnet_id=S, ip_address=S)), security_groups=arr(S),
           allowed_address_pairs=arr({}), extra_dhcp_opts=arr({}), port_security_enabled=B,
           **{"binding:vnic_type": S}, **_STD)
RULE = obj(id=S, tenant_id=S, project_id=S, security_group_id=S, direction=S, ethertype=S,
           protocol=SN, port_range_min=IN, port_range_max=IN, remote_ip_prefix=SN,
           remote_group_id=SN, remote_address_group_id=SN, normalized_cidr=SN, **_STD)
SECURITY_GROUP = obj(id=S, name=S, tenant_id=S, project_id=S, security_group_rules=arr(RULE),
                     stateful=B, **_STD)
NETWORK_QUOTA = obj(quota=obj(**{k: I for k in (
    "network", "subnet", "port", "security_group", "security_group_rule", "router",
    "floatingip", "rbac_policy", "subnetpool")}))


def one(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return obj(**{key: schema})


def many(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return obj((f"{key}_links",), **{key: arr(schema), f"{key}_links": LINKS})


# --- Identity v3 ---------------------------------------------------------------------------

_ID_LINKS = obj(self=S)
_COLLECTION_LINKS = obj(self=S, previous=SN, next=SN)
PROJECT = obj(id=S, name=S, domain_id=S, description=S, enabled=B, parent_id=SN,
              is_domain=B, tags=arr(S), options=anymap({}), links=_ID_LINKS)
USER = obj(("default_project_id", "description", "email"), id=S, name=S, domain_id=S,
           enabled=B, password_expires_at=SN, options=anymap({}), links=_ID_LINKS,
           default_project_id=S, description=S, email=S)
ROLE = obj(id=S, name=S, domain_id=SN, description=S, options=anymap({}), links=_ID_LINKS)
DOMAIN = obj(id=S, name=S, description=S, enabled=B, tags=arr(S), options=anymap({}),
             links=_ID_LINKS)
_REF = obj(("name",), id=S, name=S)
_ENDPOINT = obj(id=S, interface=S, region=S, region_id=S, url=S)
TOKEN = obj(token=obj(
    ("project", "roles", "catalog", "is_domain"),
    methods=arr(S), user=obj(id=S, name=S, password_expires_at=SN,
                             domain=obj(id=S, name=S)),
    audit_ids=arr(S), expires_at=S, issued_at=S,
    project=obj(id=S, name=S, domain=obj(id=S, name=S)), is_domain=B,
    roles=arr(obj(id=S, name=S)),
    catalog=arr(obj(type=S, name=S, id=S, endpoints=arr(_ENDPOINT)))))


def collection(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return obj(**{key: arr(schema), "links": _COLLECTION_LINKS})


ASSIGNMENT = obj(role=_REF, user=_REF, scope=obj(project=_REF), links=obj(assignment=S))
