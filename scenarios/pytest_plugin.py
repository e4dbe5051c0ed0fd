"""The voip-sandbox pytest plugin (registered through the ``pytest11`` entry point)."""
