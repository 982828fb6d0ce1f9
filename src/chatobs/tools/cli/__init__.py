"""The ``chatobs`` command line."""
