"""Identity: domains, projects, users, roles, password sign-in and tokens (Keystone v3).

The routes are ``cloud_manager.api.openstack.identity``; this package is the logic
and owns nothing HTTP: ``passwords`` (argon2id), ``tokens`` (issue, validate,
revoke), ``directory`` (admin CRUD), ``catalog`` (the service catalog) and
``bootstrap`` (the default domain, the three roles, the first admin).
"""
