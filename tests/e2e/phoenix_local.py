"""Run ``phoenix serve`` with its gRPC listener bound to 127.0.0.1 (Phoenix binds it to all interfaces).

Executed by the Phoenix interpreter (its own venv, see the Makefile's e2e target), not by the test process.
"""

import sys

import grpc.aio

_server_cls = type(grpc.aio.server())
_add_insecure = _server_cls.add_insecure_port


def _loopback_only(self, address: str) -> int:  # type: ignore[no-untyped-def]
    return _add_insecure(self, address.replace("[::]", "127.0.0.1").replace("0.0.0.0", "127.0.0.1"))


_server_cls.add_insecure_port = _loopback_only  # type: ignore[method-assign]

from phoenix.server.main import main  # noqa: E402

sys.argv = ["phoenix", "serve"]
main()
