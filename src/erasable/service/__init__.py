"""The HTTP service: models in a durable ledger behind an API with scoped keys (see :mod:`erasable.service.app`)."""
