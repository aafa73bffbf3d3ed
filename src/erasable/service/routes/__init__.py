"""The API's routes: one module per concern, each with its ``router``, which ``create_app`` mounts.

``monitoring`` (health, metrics), ``models`` (create, list, describe, delete), ``changes`` (learn, forget, steer),
``predictions``, ``audit`` (verify, events) and ``lookups`` (what the console needs: whoami, overview, samples,
receipts, a forget audited on a copy). They reach the service through :mod:`erasable.service.dependencies`.
"""
