"""The chatobs agent: one process per host, user and configuration that runs every pipeline stage and exporter for
the app processes that connect to it (``chatobs.recording.handoff``). Start it with ``python -m chatobs.runtime.agent`` or
``chatobs agent``; see docs/agent.md."""
