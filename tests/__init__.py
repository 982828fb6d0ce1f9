"""Test package (a package so that tests/mcp/ cannot shadow the mcp SDK on sys.path)."""
