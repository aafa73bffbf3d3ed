"""Durable storage of served models: the store (:mod:`erasable.ledger.store`), its schema, the hash chain of
its events and its API keys. The in-memory registry of live samples is :mod:`erasable.registry`."""
