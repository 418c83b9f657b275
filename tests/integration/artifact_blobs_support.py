"""A real S3 API for the artifact blob tests: moto's ``ThreadedMotoServer``, run in a child
process so that its own memory (it keeps objects in memory) and its CPU time stay out of the
measurements of the process under test.

The server checks every request's SigV4 signature (``INITIAL_NO_AUTH_ACTION_COUNT``: only
the IAM calls that create the test's user and access key go unauthenticated), so a signing
mistake fails the tests instead of passing unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from shared.embedded import free_port

REGION = "us-east-1"
# The IAM calls made before authentication is enforced: user, policy, access key.
_UNAUTHENTICATED_SETUP_CALLS = 3

_SERVER = """
import logging
import sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the parent closes our stdin
server.stop()
"""


@dataclass(frozen=True)
class MotoS3:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = REGION

    def client(self, *, secret_access_key: str | None = None) -> Any:
        """A boto3 client (test-only: a second, independent S3 implementation)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )


@contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    port = free_port()
    env = {
        **os.environ,
        "INITIAL_NO_AUTH_ACTION_COUNT": str(_UNAUTHENTICATED_SETUP_CALLS),
        "AWS_DEFAULT_REGION": REGION,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "ready", f"moto's S3 server did not start: {line!r}"
        endpoint = f"http://127.0.0.1:{port}"
        yield _with_user(endpoint)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _with_user(endpoint: str) -> MotoS3:
    """An IAM user allowed s3:* and its access key (the only unauthenticated calls)."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        config=Config(retries={"max_attempts": 1}),
    )
    iam.create_user(UserName="gatehouse")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(
        UserName="gatehouse", PolicyName="s3-all", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName="gatehouse")["AccessKey"]
    return MotoS3(
        endpoint_url=endpoint,
        access_key_id=key["AccessKeyId"],
        secret_access_key=key["SecretAccessKey"],
    )
