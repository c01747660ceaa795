"""Where the CLI finds the native API and a token for it.

1. ``--token`` / ``IRONBARK_TOKEN``: a token already issued by the cloud's identity
   service, used as is, with ``--url`` / ``IRONBARK_URL`` naming the native API.
2. Otherwise the CLI signs in like any OpenStack client: from the ``clouds.yaml``
   entry ``--os-cloud`` / ``OS_CLOUD`` names, else from ``OS_AUTH_URL`` and its
   ``OS_*`` companions, else from the ``ironbark`` entry that ``ironbark up`` writes.
   The file is read by openstacksdk's loader (the same search path and rules as
   the ``openstack`` CLI) and the sign-in is keystoneauth's; the native API's URL
   is the catalog's ``cloud`` service (``--url`` overrides it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

URL_ENV = "IRONBARK_URL"
TOKEN_ENV = "IRONBARK_TOKEN"
DEFAULT_CLOUD = "ironbark"

_HINT = ("run `ironbark up` (it writes the 'ironbark' entry of clouds.yaml), name an entry "
         "with --os-cloud or OS_CLOUD, or set OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and "
         "OS_PROJECT_NAME")


class CredentialsError(Exception):
    """No usable endpoint/token was found; the message says what to do about it."""


@dataclass(frozen=True)
class Credentials:
    """An endpoint of the native API and the token to use there."""

    url: str
    token: str
    project: str | None = None

    def __repr__(self) -> str:
        # Never print a token by accident (tracebacks, debug logs).
        return f"Credentials(url={self.url!r}, token='***', project={self.project!r})"


def resolve(url_opt: str | None, token_opt: str | None,
            cloud_opt: str | None = None) -> Credentials:
    url = url_opt or os.environ.get(URL_ENV) or None
    token = token_opt or os.environ.get(TOKEN_ENV) or None
    if token:
        if not url:
            raise CredentialsError(f"a token was given without the API's URL: give --url or "
                                   f"set {URL_ENV}")
        return Credentials(url=url, token=token)
    return sign_in(cloud_opt or os.environ.get("OS_CLOUD") or None, url)


def sign_in(cloud: str | None, url: str | None) -> Credentials:
    # openstacksdk is a heavy import: only commands that talk to the API pay for it.
    from keystoneauth1 import exceptions as ksa_exceptions
    from openstack import exceptions as sdk_exceptions
    from openstack.config import OpenStackConfig

    if cloud is None and not os.environ.get("OS_AUTH_URL"):
        cloud = DEFAULT_CLOUD
    try:
        region = OpenStackConfig().get_one(cloud=cloud)
    except sdk_exceptions.ConfigException as exc:
        raise CredentialsError(f"no Ironbark credentials ({exc}); {_HINT}") from None
    name = cloud or "from OS_* variables"
    try:
        session = region.get_session()
        token = session.get_token()
        endpoint = url or session.get_endpoint(service_type="cloud",
                                               interface=region.get_interface() or "public",
                                               region_name=region.get_region_name())
    except ksa_exceptions.Unauthorized:
        raise CredentialsError(f"sign-in to cloud '{name}' was refused: wrong user name, "
                               f"password or project") from None
    except ksa_exceptions.ClientException as exc:
        raise CredentialsError(f"cannot sign in to cloud '{name}': {exc}") from None
    if not endpoint:
        raise CredentialsError(f"cloud '{name}' lists no 'cloud' service (the Ironbark "
                               f"native API) in its catalog; give --url")
    project = region.auth.get("project_name") or region.auth.get("project_id")
    return Credentials(url=endpoint, token=token, project=project)
