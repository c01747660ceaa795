"""Clients of the OpenStack APIs for the tests in this directory: real tokens from the
identity service, sent as ``X-Auth-Token`` as OpenStack clients send them."""

from __future__ import annotations

import pytest

from ironbark.allinone import AllInOne
from tests.helpers import Api
from tests.identity import member_token


def os_client(cloud: AllInOne, token: str) -> Api:
    api = Api(cloud.api_url, None)
    api.session.headers["X-Auth-Token"] = token
    return api


@pytest.fixture
def os_admin(cloud: AllInOne) -> Api:
    return os_client(cloud, cloud.admin_token)


@pytest.fixture
def os_alpha(cloud: AllInOne) -> Api:
    return os_client(cloud, member_token(cloud, "alpha"))


@pytest.fixture
def os_beta(cloud: AllInOne) -> Api:
    return os_client(cloud, member_token(cloud, "beta"))


@pytest.fixture
def os_reader(cloud: AllInOne) -> Api:
    """A user with only the reader role on project alpha."""
    return os_client(cloud, member_token(cloud, "alpha", role="reader"))
