"""The simulated phones: sans-I/O phone logic, its asyncio driver and its radio link."""
