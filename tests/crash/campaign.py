"""A crash campaign through the S3 API: every acknowledged write survives kill -9.

Theory of operation
-------------------
A trial starts ``relay serve`` (disk store, SQLite registry, a fresh data directory) as a
subprocess and lets a few client threads run a random mix of every kind of write at it:
PutObject (with and without tags, empty to multi-chunk), DeleteObject, DeleteObjects,
Put/DeleteObjectTagging, CopyObject, CreateBucket/DeleteBucket, and multipart uploads
(Create, UploadPart of 5 MiB parts, UploadPartCopy of unaligned ranges, Complete, Abort,
and uploads left open). Clients work in bursts separated by idle gaps of a few seconds,
because an idle server is where unsynced state waits longest. At a random moment the
server is SIGKILLed (in half the trials only once every client sits idle: the finding's
shape), restarted on the same directory, and checked against the oracle. A trial has
``rounds`` such kills on one data directory: each round starts from what the previous
check saw, and checks it again.

The oracle. Each client owns its keys, its scratch buckets and its uploads, and runs one
request at a time, so it always knows the *definite* state of what it owns, except for
the one request in flight when the server died. That request is *uncertain*: its
response never arrived, so either outcome is right, and the things it touches get two
possible states (before and after). A request is *acknowledged* only when its whole
response arrived with a 2xx status: plain HTTP (``http.client``) signed with relay's own
SigV4 signer, no retries, so nothing is acknowledged that the client did not see. An
error answer (4xx/5xx) is never expected here (no two clients touch the same key) and is
counted as ``refused`` (and treated as uncertain).

After the restart the checker demands: every bucket is present or absent as acknowledged;
every object the clients wrote reads back byte-identical with its acknowledged tags, or is
absent as acknowledged; a listing shows no key nobody wrote; every still-open upload lists
every acknowledged part (with its ETag) and nothing else but the uncertain one, and
completes, and the completed object reads back byte-identical; a completed or aborted
upload is gone. Each violation is a *lost* acknowledgment.

Run a longer campaign with::

    .venv/bin/python -m tests.crash.campaign --trials 100 --seed 1

Object contents are recipes (a seed and a range), not bytes, so the oracle stays small;
the bytes are regenerated when they are sent and when they are checked.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from relay.sigv4 import quote_path, sign_headers

ACCESS_KEY: Final = "crash"
SECRET_KEY: Final = "crash-secret"
REGION: Final = "us-east-1"
MIB: Final = 1 << 20
PART_BYTES: Final = 5 * MIB  # S3's smallest part but the last: what the finding used
STARTUP_TIMEOUT_SECONDS: Final = 60.0
# A 5 MiB part on two loaded cores takes well under a second; a hung server fails fast.
REQUEST_TIMEOUT_SECONDS: Final = 60.0
SHARED_BUCKET: Final = "crash-shared"
_SERVE: Final = (sys.executable, "-m", "relay", "serve")
_ENDPOINT_LINE: Final = re.compile(r"serving S3 at http://([\d.]+):(\d+)")


# -- the server ---------------------------------------------------------------------------


@dataclass
class Server:
    """One ``relay serve`` process on ``data_dir`` (disk store, SQLite registry)."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, log_path: Path) -> Server:
    env = {name: value for name, value in os.environ.items() if not name.startswith("RELAY_")}
    env.update(
        RELAY_ACCESS_KEY_ID=ACCESS_KEY,
        RELAY_SECRET_ACCESS_KEY=SECRET_KEY,
        RELAY_REGION=REGION,
        RELAY_STORE="disk",
        PYTHONUNBUFFERED="1",
    )
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*_SERVE, "--data", str(data_dir), "--listen", "127.0.0.1:0", "--workers", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=data_dir.parent,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    start = log_path.stat().st_size if log_path.exists() else 0
    while time.monotonic() < deadline:
        with open(log_path, "rb") as log_file:
            log_file.seek(start)
            match = _ENDPOINT_LINE.search(log_file.read().decode(errors="replace"))
        if match:
            return Server(process, match.group(1), int(match.group(2)), log_path)
        if process.poll() is not None:
            raise RuntimeError(f"relay exited with {process.returncode}:\n{log_path.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"relay did not announce its endpoint:\n{log_path.read_text()}")


# -- the client ---------------------------------------------------------------------------


class Refused(Exception):
    """The server answered, but not with 2xx (or with an error inside a 200)."""

    def __init__(self, status: int, body: bytes) -> None:
        code = re.search(rb"<Code>([^<]*)</Code>", body)
        self.status = status
        self.code = code.group(1).decode() if code else ""
        super().__init__(f"{status} {self.code}")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def _strip_namespaces(body: bytes) -> ElementTree.Element:
    root = ElementTree.fromstring(body)
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    return root


class S3:
    """A minimal S3 client over one keep-alive connection: every request signed, never
    retried; a reply counts only once its whole body arrived."""

    def __init__(self, host: str, port: int) -> None:
        self.host = f"{host}:{port}"
        self._connection = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_SECONDS)

    def close(self) -> None:
        self._connection.close()

    def request(
        self,
        method: str,
        path: str,
        query: str = "",
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
        ok: Sequence[int] = (200, 204),
    ) -> Reply:
        wire_path = quote_path(path)
        sent = [("Host", self.host), ("Content-Length", str(len(body))), *headers]
        sent += sign_headers(
            method,
            self.host,
            wire_path,
            query,
            sent,
            payload_hash=hashlib.sha256(body).hexdigest(),
            access_key=ACCESS_KEY,
            secret=SECRET_KEY,
            region=REGION,
            service="s3",
            now=time.time(),
        )
        target = wire_path + (f"?{query}" if query else "")
        try:
            self._connection.request(method, target, body=body, headers=dict(sent))
            response = self._connection.getresponse()
            data = response.read()
        except BaseException:
            self._connection.close()
            raise
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if reply.status not in ok or (reply.status == 200 and data.find(b"<Error>") >= 0):
            raise Refused(reply.status, data)
        return reply

    # -- operations ----------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        self.request("PUT", f"/{bucket}")

    def delete_bucket(self, bucket: str) -> None:
        self.request("DELETE", f"/{bucket}")

    def list_buckets(self) -> set[str]:
        root = _strip_namespaces(self.request("GET", "/").body)
        return {name.text or "" for name in root.iter("Name")}

    def put_object(self, bucket: str, key: str, data: bytes, tags: Tags = ()) -> str:
        headers = [("x-amz-tagging", _tag_header(tags))] if tags else []
        return self.request("PUT", f"/{bucket}/{key}", body=data, headers=headers).headers["etag"]

    def get_object(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.request("GET", f"/{bucket}/{key}").body
        except Refused as refused:
            if refused.status == 404 and refused.code == "NoSuchKey":
                return None
            raise

    def delete_object(self, bucket: str, key: str) -> None:
        self.request("DELETE", f"/{bucket}/{key}")

    def delete_objects(self, bucket: str, keys: Sequence[str]) -> None:
        body = (
            "<Delete>" + "".join(f"<Object><Key>{key}</Key></Object>" for key in keys) + "</Delete>"
        ).encode()
        reply = self.request("POST", f"/{bucket}", "delete", body, [_content_md5(body)])
        deleted = {k.text for k in _strip_namespaces(reply.body).iter("Key")}
        if deleted != set(keys):
            raise Refused(reply.status, reply.body)

    def get_tags(self, bucket: str, key: str) -> Tags:
        root = _strip_namespaces(self.request("GET", f"/{bucket}/{key}", "tagging").body)
        return tuple(
            sorted(
                (tag.findtext("Key") or "", tag.findtext("Value") or "") for tag in root.iter("Tag")
            )
        )

    def put_tags(self, bucket: str, key: str, tags: Tags) -> None:
        body = (
            "<Tagging><TagSet>"
            + "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in tags)
            + "</TagSet></Tagging>"
        ).encode()
        self.request("PUT", f"/{bucket}/{key}", "tagging", body, [_content_md5(body)])

    def delete_tags(self, bucket: str, key: str) -> None:
        self.request("DELETE", f"/{bucket}/{key}", "tagging")

    def copy_object(self, bucket: str, source: str, key: str, tags: Tags | None) -> None:
        headers = [("x-amz-copy-source", f"/{bucket}/{source}")]
        if tags is not None:
            headers += [
                ("x-amz-tagging-directive", "REPLACE"),
                ("x-amz-tagging", _tag_header(tags)),
            ]
        reply = self.request("PUT", f"/{bucket}/{key}", headers=headers)
        if b"CopyObjectResult" not in reply.body:
            raise Refused(reply.status, reply.body)

    def list_keys(self, bucket: str) -> list[str]:
        keys: list[str] = []
        token = ""
        while True:
            query = "list-type=2" + (f"&continuation-token={_q(token)}" if token else "")
            root = _strip_namespaces(self.request("GET", f"/{bucket}", query).body)
            keys += [c.findtext("Key") or "" for c in root.iter("Contents")]
            token = root.findtext("NextContinuationToken") or ""
            if root.findtext("IsTruncated") != "true":
                return keys

    def create_upload(self, bucket: str, key: str) -> str:
        root = _strip_namespaces(self.request("POST", f"/{bucket}/{key}", "uploads").body)
        return root.findtext("UploadId") or ""

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        query = f"partNumber={number}&uploadId={upload_id}"
        return self.request("PUT", f"/{bucket}/{key}", query, data).headers["etag"].strip('"')

    def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, source: str, first: int, last: int
    ) -> str:
        query = f"partNumber={number}&uploadId={upload_id}"
        headers = [
            ("x-amz-copy-source", f"/{bucket}/{source}"),
            ("x-amz-copy-source-range", f"bytes={first}-{last}"),
        ]
        reply = self.request("PUT", f"/{bucket}/{key}", query, headers=headers)
        return (_strip_namespaces(reply.body).findtext("ETag") or "").strip('"')

    def list_parts(self, bucket: str, key: str, upload_id: str) -> dict[int, str] | None:
        try:
            reply = self.request("GET", f"/{bucket}/{key}", f"uploadId={upload_id}")
        except Refused as refused:
            if refused.code == "NoSuchUpload":
                return None
            raise
        return {
            int(part.findtext("PartNumber") or 0): (part.findtext("ETag") or "").strip('"')
            for part in _strip_namespaces(reply.body).iter("Part")
        }

    def list_uploads(self, bucket: str) -> set[str]:
        root = _strip_namespaces(self.request("GET", f"/{bucket}", "uploads").body)
        return {upload.findtext("UploadId") or "" for upload in root.iter("Upload")}

    def complete(self, bucket: str, key: str, upload_id: str, parts: dict[int, str]) -> None:
        body = (
            "<CompleteMultipartUpload>"
            + "".join(
                f'<Part><PartNumber>{n}</PartNumber><ETag>"{etag}"</ETag></Part>'
                for n, etag in sorted(parts.items())
            )
            + "</CompleteMultipartUpload>"
        ).encode()
        reply = self.request("POST", f"/{bucket}/{key}", f"uploadId={upload_id}", body)
        if b"CompleteMultipartUploadResult" not in reply.body:
            raise Refused(reply.status, reply.body)

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        self.request("DELETE", f"/{bucket}/{key}", f"uploadId={upload_id}")


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _content_md5(body: bytes) -> tuple[str, str]:
    return ("Content-MD5", base64.b64encode(hashlib.md5(body).digest()).decode())


def _tag_header(tags: Tags) -> str:
    return "&".join(f"{k}={v}" for k, v in tags)


# -- contents as recipes -------------------------------------------------------------------

# (seed, size of the generated run, start, end): bytes ``generate(seed, size)[start:end]``.
Piece = tuple[int, int, int, int]
Content = tuple[Piece, ...]
Tags = tuple[tuple[str, str], ...]


def generate(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def content_bytes(content: Content) -> bytes:
    return b"".join(generate(seed, size)[start:end] for seed, size, start, end in content)


def whole(seed: int, size: int) -> Content:
    return ((seed, size, 0, size),)


@dataclass(frozen=True)
class Obj:
    content: Content
    tags: Tags


@dataclass(frozen=True)
class Part:
    etag: str
    content: Content


@dataclass(frozen=True)
class Upload:
    """An open upload's acknowledged parts; ``None`` stands for an upload that is gone."""

    bucket: str
    key: str
    parts: dict[int, Part]


GONE: Final = None


@dataclass
class World:
    """The definite state a round starts from: what the previous round's check saw."""

    objects: dict[tuple[str, str], Obj | None] = field(default_factory=dict)
    buckets: dict[str, bool] = field(default_factory=dict)


# -- the workload --------------------------------------------------------------------------

KEYS_PER_CLIENT: Final = 6
# Some clients mostly upload parts: with them, the last writes before a kill are more
# often parts (which no commit follows) than puts (which the bucket writer syncs).
UPLOADER_SHARE: Final = 0.4


@dataclass
class Outcome:
    """What one client knows at the end: the possible states of everything it touched."""

    objects: dict[tuple[str, str], list[Obj | None]] = field(default_factory=dict)
    buckets: dict[str, list[bool]] = field(default_factory=dict)
    uploads: dict[str, list[Upload | None]] = field(default_factory=dict)
    uncertain_creates: dict[str, int] = field(default_factory=dict)
    acknowledged: Counter[str] = field(default_factory=Counter)
    uncertain: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)


class Client:
    """One client thread: owns keys ``c{n}/…`` of the shared bucket, its scratch buckets
    and its uploads; one request at a time; stops at the first request that fails."""

    def __init__(
        self,
        number: int,
        server: Server,
        seed: int,
        stop: threading.Event,
        idle: IdleClients,
        world: World,
    ) -> None:
        self.number = number
        self.idle = idle
        self.rng = random.Random(seed)
        self.s3 = S3(server.host, server.port)
        self.stop = stop
        scratch = f"crash-c{number}-"
        self.objects: dict[tuple[str, str], Obj | None] = {
            (bucket, key): obj
            for (bucket, key), obj in world.objects.items()
            if key.startswith(f"c{number}/") or bucket.startswith(scratch)
        }
        self.buckets = {b: present for b, present in world.buckets.items() if b.startswith(scratch)}
        self.uploads: dict[str, Upload | None] = {}
        self.outcome = Outcome()
        self._seeds = iter(range(seed * 1_000_000, (seed + 1) * 1_000_000))
        self.source_key = f"c{number}/source"
        source = self.objects.get((SHARED_BUCKET, self.source_key))
        self.source: Content = () if source is None else source.content
        self.stalled = False

    def fresh_seed(self) -> int:
        return next(self._seeds)

    # -- bookkeeping of one request ---------------------------------------------------

    def attempt(
        self,
        kind: str,
        send: Callable[[], object],
        objects: dict[tuple[str, str], Obj | None] | None = None,
        buckets: dict[str, bool] | None = None,
        uploads: dict[str, Upload | None] | None = None,
        creates_upload_in: str | None = None,
    ) -> bool:
        """Send one request; on acknowledgment apply its effects, else record both states."""
        objects, buckets, uploads = objects or {}, buckets or {}, uploads or {}
        try:
            send()
        except Exception as exc:
            out = self.outcome
            if isinstance(exc, Refused):
                out.refused.append(f"{kind}: {exc}")
            out.uncertain[kind] += 1
            for name, after_obj in objects.items():
                out.objects[name] = [self.objects.get(name), after_obj]
            for bucket, after_bucket in buckets.items():
                out.buckets[bucket] = [self.buckets.get(bucket, False), after_bucket]
            for upload_id, after_upload in uploads.items():
                out.uploads[upload_id] = [self.uploads.get(upload_id), after_upload]
            if creates_upload_in is not None:
                out.uncertain_creates[creates_upload_in] = (
                    out.uncertain_creates.get(creates_upload_in, 0) + 1
                )
            raise _Stopped from exc
        self.outcome.acknowledged[kind] += 1
        self.objects.update(objects)
        self.buckets.update(buckets)
        self.uploads.update(uploads)
        return True

    def finish(self) -> Outcome:
        out = self.outcome
        for name, obj in self.objects.items():
            out.objects.setdefault(name, [obj])
        for bucket, present in self.buckets.items():
            out.buckets.setdefault(bucket, [present])
        for upload_id, upload in self.uploads.items():
            out.uploads.setdefault(upload_id, [upload])
        self.s3.close()
        return out

    # -- the operations -----------------------------------------------------------------

    def key(self) -> tuple[str, str]:
        return SHARED_BUCKET, f"c{self.number}/k{self.rng.randrange(KEYS_PER_CLIENT)}"

    def existing(self) -> tuple[str, str] | None:
        present = [
            name
            for name, obj in self.objects.items()
            if obj is not None and name[0] == SHARED_BUCKET and name[1] != self.source_key
        ]
        return self.rng.choice(present) if present else None

    def tags(self) -> Tags:
        return tuple(sorted({(f"t{self.rng.randrange(3)}", str(self.rng.randrange(100)))}))

    def put(self) -> None:
        bucket, key = self.key()
        size = self.rng.choice([0, 100, 5000, 70_000, 300_000, 1 * MIB + 12345, 2 * MIB])
        content = whole(self.fresh_seed(), size)
        tags = self.tags() if self.rng.random() < 0.3 else ()
        data = content_bytes(content)
        self.attempt(
            "PutObject",
            lambda: self.s3.put_object(bucket, key, data, tags),
            objects={(bucket, key): Obj(content, tags)},
        )

    def delete(self) -> None:
        bucket, key = self.existing() or self.key()
        self.attempt(
            "DeleteObject",
            lambda: self.s3.delete_object(bucket, key),
            objects={(bucket, key): None},
        )

    def delete_many(self) -> None:
        names = sorted({self.key() for _ in range(3)})
        self.attempt(
            "DeleteObjects",
            lambda: self.s3.delete_objects(SHARED_BUCKET, [key for _, key in names]),
            objects=dict.fromkeys(names),
        )

    def tag(self) -> None:
        name = self.existing()
        current = self.objects.get(name) if name else None
        if name is None or current is None:
            return self.put()
        if current.tags and self.rng.random() < 0.4:
            self.attempt(
                "DeleteObjectTagging",
                lambda: self.s3.delete_tags(*name),
                objects={name: Obj(current.content, ())},
            )
            return None
        tags = self.tags()
        self.attempt(
            "PutObjectTagging",
            lambda: self.s3.put_tags(*name, tags),
            objects={name: Obj(current.content, tags)},
        )
        return None

    def copy(self) -> None:
        source = self.existing()
        current = self.objects.get(source) if source else None
        target = self.key()
        if source is None or current is None or target == source:
            return self.put()
        tags = self.tags() if self.rng.random() < 0.5 else None
        self.attempt(
            "CopyObject",
            lambda: self.s3.copy_object(SHARED_BUCKET, source[1], target[1], tags),
            objects={target: Obj(current.content, current.tags if tags is None else tags)},
        )
        return None

    def scratch_bucket(self) -> None:
        """One step of a scratch bucket's life: create, fill, empty, delete."""
        live = [b for b, present in self.buckets.items() if present]
        if not live:
            bucket = f"crash-c{self.number}-{self.rng.randrange(1 << 30):x}"
            self.attempt(
                "CreateBucket", lambda: self.s3.create_bucket(bucket), buckets={bucket: True}
            )
            return
        bucket = live[0]
        name = (bucket, "only")
        if self.objects.get(name) is None and self.rng.random() < 0.6:
            content = whole(self.fresh_seed(), self.rng.choice([10, 40_000]))
            data = content_bytes(content)
            self.attempt(
                "PutObject",
                lambda: self.s3.put_object(bucket, "only", data),
                objects={name: Obj(content, ())},
            )
        elif self.objects.get(name) is not None:
            self.attempt("DeleteObject", lambda: self.s3.delete_object(*name), objects={name: None})
        else:
            self.attempt(
                "DeleteBucket", lambda: self.s3.delete_bucket(bucket), buckets={bucket: False}
            )

    def multipart(self) -> None:
        """An upload of 1 to 3 parts (uploaded or copied), then Complete, Abort or leave it."""
        bucket, key = self.key()
        found: list[str] = []
        self.attempt(
            "CreateMultipartUpload",
            lambda: found.append(self.s3.create_upload(bucket, key)),
            creates_upload_in=bucket,
        )
        upload_id = found[0]
        self.uploads[upload_id] = upload = Upload(bucket, key, {})
        for number in range(1, self.rng.randint(1, 3) + 1):
            if self.stop.is_set():
                return
            if self.rng.random() < 0.35:
                # An unaligned range of the source: edge chunks are new blobs.
                first = self.rng.randrange(1, MIB)
                seed, size, _, _ = self.source[0]
                content: Content = ((seed, size, first, first + PART_BYTES),)
                etags: list[str] = []
                after = Upload(bucket, key, {**upload.parts, number: Part("", content)})
                self.attempt(
                    "UploadPartCopy",
                    lambda first=first, number=number, etags=etags: etags.append(
                        self.s3.upload_part_copy(
                            bucket,
                            key,
                            upload_id,
                            number,
                            self.source_key,
                            first,
                            first + PART_BYTES - 1,
                        )
                    ),
                    uploads={upload_id: after},
                )
                part = Part(etags[0], content)
            else:
                content = whole(self.fresh_seed(), PART_BYTES + self.rng.randrange(100_000))
                data = content_bytes(content)
                part = Part(hashlib.md5(data).hexdigest(), content)
                after = Upload(bucket, key, {**upload.parts, number: part})
                self.attempt(
                    "UploadPart",
                    lambda number=number, data=data: self.s3.upload_part(
                        bucket, key, upload_id, number, data
                    ),
                    uploads={upload_id: after},
                )
            upload = Upload(bucket, key, {**upload.parts, number: part})
            self.uploads[upload_id] = upload
        choice = self.rng.random()
        if choice < 0.45:
            joined = tuple(piece for _, p in sorted(upload.parts.items()) for piece in p.content)
            etags_by_number = {n: p.etag for n, p in upload.parts.items()}
            self.attempt(
                "CompleteMultipartUpload",
                lambda: self.s3.complete(bucket, key, upload_id, etags_by_number),
                objects={(bucket, key): Obj(joined, ())},
                uploads={upload_id: GONE},
            )
        elif choice < 0.65:
            self.attempt(
                "AbortMultipartUpload",
                lambda: self.s3.abort(bucket, key, upload_id),
                uploads={upload_id: GONE},
            )
        else:  # left open, for the checker to complete after the restart; the client
            # stalls, as one whose upload was interrupted does, and goes idle
            self.stalled = True

    def put_source(self) -> None:
        self.source = whole(self.fresh_seed(), PART_BYTES + 2 * MIB)
        data = content_bytes(self.source)
        name = (SHARED_BUCKET, self.source_key)
        self.attempt(
            "PutObject",
            lambda: self.s3.put_object(SHARED_BUCKET, self.source_key, data),
            objects={name: Obj(self.source, ())},
        )

    def run(self, max_idle_seconds: float) -> None:
        operations: list[tuple[Callable[[], None], int]] = [
            (self.put, 6),
            (self.delete, 2),
            (self.delete_many, 1),
            (self.tag, 3),
            (self.copy, 2),
            (self.scratch_bucket, 2),
            (self.multipart, 3),
        ]
        if self.rng.random() < UPLOADER_SHARE:  # mostly multipart, as a backup tool is
            operations.append((self.multipart, 20))
        functions = [f for f, _ in operations]
        weights = [w for _, w in operations]
        try:
            if not self.source:
                self.put_source()
            while not self.stop.is_set():
                self.stalled = False
                for _ in range(self.rng.randint(2, 8)):
                    self.rng.choices(functions, weights)[0]()
                    if self.stop.is_set():
                        return
                    if self.stalled:
                        break
                with self.idle.gap():
                    self.stop.wait(self.rng.uniform(0, max_idle_seconds))
        except _Stopped:
            return


class _Stopped(Exception):
    pass


class IdleClients:
    """How many clients sit in an idle gap: a *quiet kill* waits until all of them do, so
    the last acknowledgments are seconds old when the server dies (the finding's shape)."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def gap(self) -> Iterator[None]:
        with self._changed:
            self._count += 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._count -= 1

    def wait_for_all(self, clients: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._count == clients, timeout)


# -- checking ------------------------------------------------------------------------------


@dataclass
class TrialResult:
    acknowledged: Counter[str]
    uncertain: Counter[str]
    refused: list[str]
    lost: list[str]
    completed_after_restart: int
    kills: int = 0


def merge(outcomes: Sequence[Outcome]) -> Outcome:
    merged = Outcome()
    for outcome in outcomes:
        merged.objects.update(outcome.objects)
        merged.buckets.update(outcome.buckets)
        merged.uploads.update(outcome.uploads)
        for bucket, count in outcome.uncertain_creates.items():
            merged.uncertain_creates[bucket] = merged.uncertain_creates.get(bucket, 0) + count
        merged.acknowledged.update(outcome.acknowledged)
        merged.uncertain.update(outcome.uncertain)
        merged.refused += outcome.refused
    return merged


def check(s3: S3, expected: Outcome) -> tuple[list[str], int, World]:
    """Compare the restarted server with the oracle; the violations, the number of open
    uploads completed (each one the proof that its parts survived), and the state seen
    (every upload completed or aborted), which the next round starts from."""
    lost: list[str] = []
    seen = World()
    buckets = s3.list_buckets()
    present_buckets = {SHARED_BUCKET} & buckets
    if SHARED_BUCKET not in buckets:
        lost.append(f"bucket {SHARED_BUCKET} is gone")
    for bucket, possible in expected.buckets.items():
        if (bucket in buckets) not in possible:
            lost.append(f"bucket {bucket}: present={bucket in buckets}, expected {possible}")
        seen.buckets[bucket] = bucket in buckets
        if bucket in buckets:
            present_buckets.add(bucket)
    for (bucket, key), possible_objects in sorted(expected.objects.items()):
        seen.objects[bucket, key] = None
        if bucket not in present_buckets:
            if None not in possible_objects:
                lost.append(f"{bucket}/{key}: its bucket is gone")
            continue
        data = s3.get_object(bucket, key)
        tags = s3.get_tags(bucket, key) if data is not None else ()
        matching = [
            obj
            for obj in possible_objects
            if (obj is None and data is None)
            or (
                obj is not None
                and data is not None
                and obj.tags == tags
                and data == content_bytes(obj.content)
            )
        ]
        if matching:
            seen.objects[bucket, key] = matching[0]
        else:
            seen.objects.pop((bucket, key))  # unknown now: the next round leaves it alone
            shown = "absent" if data is None else f"{len(data)} bytes, tags {tags}"
            lost.append(f"{bucket}/{key}: {shown}, expected one of {_describe(possible_objects)}")
    for bucket in sorted(present_buckets):
        known = {key for b, key in expected.objects if b == bucket}
        for key in s3.list_keys(bucket):
            if key not in known:
                lost.append(f"{bucket}/{key} is listed but nobody wrote it")
        listed_uploads = s3.list_uploads(bucket)
        unknown = listed_uploads - set(expected.uploads)
        if len(unknown) > expected.uncertain_creates.get(bucket, 0):
            lost.append(f"{bucket}: {len(unknown)} unknown uploads listed")
        for upload_id in listed_uploads & set(expected.uploads):
            if all(upload is None for upload in expected.uploads[upload_id]):
                lost.append(f"{bucket}: upload {upload_id} was completed or aborted, but is listed")
    completed = 0
    for upload_id, possible_uploads in expected.uploads.items():
        opened = [u for u in possible_uploads if u is not None]
        if not opened:
            continue  # gone for sure (a listing showing it again was caught above)
        bucket, key = opened[0].bucket, opened[0].key
        listed = s3.list_parts(bucket, key, upload_id)
        if listed is None:
            if GONE not in possible_uploads:
                lost.append(f"upload {upload_id} of {key} is gone, but was open")
            continue
        match = next(
            (
                u
                for u in opened
                if {n: p.etag for n, p in u.parts.items()} == listed
                or _matches_with_unknown_etag(u, listed)
            ),
            None,
        )
        if match is None:
            lost.append(f"upload {upload_id} of {key} lists {listed}, expected {opened}")
            continue
        if not listed:
            s3.abort(bucket, key, upload_id)
            continue
        try:
            s3.complete(bucket, key, upload_id, listed)
        except Refused as refused:
            lost.append(f"upload {upload_id} of {key}: Complete refused: {refused}")
            continue
        data = s3.get_object(bucket, key)
        joined = tuple(piece for _, p in sorted(match.parts.items()) for piece in p.content)
        if data != content_bytes(joined):
            lost.append(f"upload {upload_id} of {key}: the completed object differs")
        seen.objects[bucket, key] = Obj(joined, ())
        completed += 1
    return lost, completed, seen


def _matches_with_unknown_etag(upload: Upload, listed: dict[int, str]) -> bool:
    """An uncertain UploadPartCopy's ETag was never seen: any ETag stands for it."""
    if set(upload.parts) != set(listed):
        return False
    return all(part.etag in ("", listed[n]) for n, part in upload.parts.items())


def _describe(possible: Sequence[Obj | None]) -> str:
    return ", ".join(
        "absent" if obj is None else f"{sum(e - s for _, _, s, e in obj.content)} bytes {obj.tags}"
        for obj in possible
    )


# -- a trial -------------------------------------------------------------------------------


def run_trial(
    directory: Path,
    seed: int,
    *,
    rounds: int = 2,
    clients: int = 3,
    kill_after: tuple[float, float] = (1.0, 6.0),
    max_idle_seconds: float = 2.5,
    quiet_kill_share: float = 0.5,
) -> TrialResult:
    """One trial in ``directory``: ``rounds`` times start, load, kill -9 at a random
    moment, restart and check, on the same data directory (each round also rechecks
    everything the earlier rounds left)."""
    rng = random.Random(seed)
    data_dir = directory / "data"
    log_path = directory / "relay.log"
    world = World()
    result = TrialResult(Counter(), Counter(), [], [], 0)
    for round_number in range(rounds):
        server = start_server(data_dir, log_path)
        try:
            if round_number == 0:
                setup = S3(server.host, server.port)
                setup.create_bucket(SHARED_BUCKET)
                setup.close()
            expected = _load_and_kill(
                server, rng, world, clients, kill_after, max_idle_seconds, quiet_kill_share
            )
        finally:
            if server.process.poll() is None:
                server.kill()
        server = start_server(data_dir, log_path)
        try:
            checker = S3(server.host, server.port)
            lost, completed, world = check(checker, expected)
            checker.close()
        finally:
            server.stop()
        result.acknowledged.update(expected.acknowledged)
        result.uncertain.update(expected.uncertain)
        result.refused += expected.refused
        result.lost += lost
        result.completed_after_restart += completed
        result.kills += 1
        if lost:
            break  # the data directory is kept for a look; later rounds would add noise
    return result


def _load_and_kill(
    server: Server,
    rng: random.Random,
    world: World,
    clients: int,
    kill_after: tuple[float, float],
    max_idle_seconds: float,
    quiet_kill_share: float,
) -> Outcome:
    """Run the clients against ``server`` and SIGKILL it; what the clients know."""
    stop = threading.Event()
    idle = IdleClients()
    workers = [Client(n, server, rng.randrange(1 << 30), stop, idle, world) for n in range(clients)]
    threads = [
        threading.Thread(target=worker.run, args=(max_idle_seconds,), daemon=True)
        for worker in workers
    ]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(*kill_after))
    quiet = rng.random() < quiet_kill_share
    if quiet and idle.wait_for_all(clients, timeout=3 * max_idle_seconds):
        time.sleep(rng.uniform(0, max_idle_seconds / 4))
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT_SECONDS)
    return merge([worker.finish() for worker in workers])


@dataclass
class CampaignResult:
    trials: int = 0
    kills: int = 0
    acknowledged: Counter[str] = field(default_factory=Counter)
    uncertain: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    completed_after_restart: int = 0

    def add(self, trial: TrialResult) -> None:
        self.trials += 1
        self.kills += trial.kills
        self.acknowledged.update(trial.acknowledged)
        self.uncertain.update(trial.uncertain)
        self.refused += trial.refused
        self.lost += trial.lost
        self.completed_after_restart += trial.completed_after_restart

    def report(self) -> Iterator[str]:
        yield f"trials: {self.trials} (kill -9 and restart: {self.kills})"
        yield f"acknowledged operations: {sum(self.acknowledged.values())}"
        for kind, count in sorted(self.acknowledged.items()):
            yield f"  {kind}: {count}"
        yield f"uncertain (in flight at the kill): {sum(self.uncertain.values())}"
        for kind, count in sorted(self.uncertain.items()):
            yield f"  {kind}: {count}"
        yield f"open uploads completed after a restart: {self.completed_after_restart}"
        yield f"refused: {len(self.refused)}"
        for refusal in self.refused[:20]:
            yield f"  {refusal}"
        yield f"lost: {len(self.lost)}"
        for loss in self.lost[:50]:
            yield f"  {loss}"


def run_campaign(
    trials: int,
    seed: int,
    *,
    directory: Path | None = None,
    on_trial: Callable[[int, TrialResult], None] | None = None,
    result: CampaignResult | None = None,
    **options: object,
) -> CampaignResult:
    """Run ``trials`` trials, adding each to ``result`` as it ends (so a campaign stopped
    with Ctrl-C still has the figures of the trials it finished)."""
    result = CampaignResult() if result is None else result
    with contextlib.ExitStack() as stack:
        base = directory or Path(stack.enter_context(tempfile.TemporaryDirectory("crash")))
        for trial in range(trials):
            trial_dir = base / f"trial-{trial}"
            trial_dir.mkdir(parents=True)
            outcome = run_trial(trial_dir, seed * 100_003 + trial, **options)  # type: ignore[arg-type]
            result.add(outcome)
            if on_trial is not None:
                on_trial(trial, outcome)
            if not outcome.lost:
                shutil.rmtree(trial_dir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="kills per data directory")
    parser.add_argument("--kill-after-max", type=float, default=8.0)
    parser.add_argument("--directory", type=Path, help="keep trials that lost data here")
    args = parser.parse_args()
    started = time.monotonic()

    def progress(trial: int, outcome: TrialResult) -> None:
        acked = sum(outcome.acknowledged.values())
        print(
            f"trial {trial}: {acked} acknowledged, {sum(outcome.uncertain.values())} uncertain,"
            f" {len(outcome.refused)} refused, {len(outcome.lost)} lost",
            flush=True,
        )

    # Stopping early (Ctrl-C, or SIGTERM for a run in the background, where SIGINT is
    # ignored) still prints the figures of the finished trials; a trial's own cleanup
    # stops its server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = CampaignResult()
    try:
        run_campaign(
            args.trials,
            args.seed,
            directory=args.directory,
            on_trial=progress,
            result=result,
            clients=args.clients,
            rounds=args.rounds,
            kill_after=(0.5, args.kill_after_max),
        )
    except KeyboardInterrupt:
        print("interrupted: the figures cover the trials that finished")
    print(f"seed {args.seed}, {time.monotonic() - started:.0f} s")
    for line in result.report():
        print(line)
    return 1 if result.lost or result.refused else 0


if __name__ == "__main__":
    sys.exit(main())
