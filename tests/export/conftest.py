from tests.export.trained import tiny_checkpoint  # noqa: F401
