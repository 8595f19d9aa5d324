"""Built-in claims, one module per method family (registered lazily in ``registry.py``)."""
