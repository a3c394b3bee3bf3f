"""Identity backends of the callout: each turns credentials into a :class:`callout.identity.Identity`.

Backends import their client library lazily through their own module (``callout.backends.ldap``
needs ``ldap3``), so importing this package costs nothing.
"""
