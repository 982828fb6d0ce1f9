"""What the app side (``chatobs.recording``) and the agent (``chatobs.runtime.agent``) share: the wire format of span records
and the socket directory with its security checks. Nothing here imports the runtime or the agent."""
