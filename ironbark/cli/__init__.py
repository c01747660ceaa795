"""The ``ironbark`` command-line client of the native API (docs/api.md).

Kept free of server imports so the command starts fast on any workstation: only
``ironbark up``/``down`` reach into the all-in-one code, and they import it lazily.
"""
