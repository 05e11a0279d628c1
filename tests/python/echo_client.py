"""A Python grpcio client of the test service (tests/proto/echo.proto), for tests/grpc_python.rs.

    python echo_client.py HOST:PORT TRACEPARENT

Compiles the proto with grpcio-tools' bundled protoc into a temporary directory, makes one call
of each shape plus a failing one (each with the given `traceparent` metadata), and prints one JSON
line per call with what it got back.
"""

import importlib
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def load_stubs(out):
    proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "proto")
    rc = protoc.main([
        "protoc",
        f"-I{proto_dir}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.join(proto_dir, "echo.proto"),
    ])
    if rc != 0:
        sys.exit(f"protoc failed: {rc}")
    sys.path.insert(0, out)
    return importlib.import_module("echo_pb2"), importlib.import_module("echo_pb2_grpc")


def main():
    target, traceparent = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as out:
        pb, rpc = load_stubs(out)
        md = [("traceparent", traceparent), ("x-client", "python")]
        with grpc.insecure_channel(target) as channel:
            stub = rpc.EchoStub(channel)
            r = stub.Unary(pb.EchoRequest(message="from python", big=7), metadata=md, timeout=10)
            print(json.dumps({"call": "unary", "message": r.message}))
            rs = stub.ServerStream(pb.EchoRequest(message="py", count=2), metadata=md, timeout=10)
            print(json.dumps({"call": "server_stream", "messages": [r.message for r in rs]}))
            reqs = iter([pb.EchoRequest(message="a"), pb.EchoRequest(message="b")])
            r = stub.ClientStream(reqs, metadata=md, timeout=10)
            print(json.dumps({"call": "client_stream", "message": r.message}))
            reqs = iter([pb.EchoRequest(message="c"), pb.EchoRequest(message="d")])
            rs = stub.Bidi(reqs, metadata=md, timeout=10)
            print(json.dumps({"call": "bidi", "messages": [r.message for r in rs]}))
            try:
                stub.Unary(
                    pb.EchoRequest(mode=pb.MODE_FAIL, fail_code=14, fail_message="try later"),
                    metadata=md,
                    timeout=10,
                )
                print(json.dumps({"call": "fail", "code": "OK"}))
            except grpc.RpcError as e:
                print(json.dumps({"call": "fail", "code": e.code().name, "details": e.details()}))


if __name__ == "__main__":
    main()
