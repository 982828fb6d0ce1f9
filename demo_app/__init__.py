"""The chatobs demo chat app (see README: `make demo`)."""
