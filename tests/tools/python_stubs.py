"""The Python protobuf and gRPC stubs of proto/fieldsync/v1, for the tools
tests' Python tablets (tablet_write.py, tablet_reseal.py)."""

import os
import subprocess
import sys


def use_stubs(source, gen):
    """Generates the stubs into `gen` with protoc when absent, and puts them
    and the independent Python device (tests/interop) on sys.path."""
    if not os.path.exists(os.path.join(gen, "fieldsync", "v1", "sync_pb2_grpc.py")):
        os.makedirs(gen, exist_ok=True)
        protos = sorted(os.path.join("fieldsync/v1", p)
                        for p in os.listdir(os.path.join(source, "proto/fieldsync/v1"))
                        if p.endswith(".proto"))
        subprocess.run(["protoc", "-I", os.path.join(source, "proto"), "-I", "/usr/include",
                        "--python_out", gen, "--grpc_python_out", gen,
                        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"] + protos,
                       check=True)
        for d in ("fieldsync", "fieldsync/v1"):
            open(os.path.join(gen, d, "__init__.py"), "a").close()
    sys.path.insert(0, gen)
    sys.path.insert(0, os.path.join(source, "tests", "interop"))
