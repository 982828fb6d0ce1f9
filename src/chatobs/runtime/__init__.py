"""The one place that builds and wires chatobs (``init()``/``shutdown()``), the control API and the agent process."""
