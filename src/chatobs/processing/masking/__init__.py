"""Masking content before export: the masker over span payloads and the Presidio worker process."""
