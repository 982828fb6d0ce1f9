"""What a person runs: the ``chatobs`` CLI, ``chatobs doctor`` and the local trace viewer."""
