"""The tiny synthetic scene fixtures (``tiny_config``, ``tiny_scene``) live in tests/conftest.py."""
