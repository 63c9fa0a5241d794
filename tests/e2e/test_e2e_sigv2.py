"""SigV2 against a real relay: what the default tools produce.

boto3's ``generate_presigned_url`` with default settings and ``aws s3 presign`` write SigV2
URLs (``AWSAccessKeyId``, ``Expires``, ``Signature``) for a custom endpoint in us-east-1;
boto3 with ``signature_version="s3"`` and s3cmd with ``signature_v2 = True`` sign every
request with SigV2 headers. Each must work, and an expired or altered URL must not.
"""

from __future__ import annotations

import http.client
import subprocess
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig
from e2e_helpers import ACCESS_KEY, REGION, SECRET_KEY, VENV_BIN, RelayProcess, boto_client


def default_client(relay: RelayProcess, **config: Any) -> Any:
    """boto3 as a user makes it: only the endpoint and credentials, no signature choice."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=relay.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def fetch(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """The URL fetched as a plain HTTP client would (http.client adds no Content-Type of
    its own, as curl --upload-file does not: a presigned PUT signs the one it names)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        connection.request(method, target, body=data, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def bucket(relay_server: RelayProcess, bucket_name: str) -> str:
    client = boto_client(relay_server)
    client.create_bucket(Bucket=bucket_name)
    client.put_object(Bucket=bucket_name, Key="dir/the object.txt", Body=b"presigned bytes")
    return bucket_name


def test_boto3_default_presigned_get(relay_server: RelayProcess, bucket: str) -> None:
    url = default_client(relay_server).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/the object.txt"}
    )
    assert "AWSAccessKeyId=" in url  # botocore's default: SigV2
    assert "X-Amz-" not in url
    assert fetch(url) == (200, b"presigned bytes")
    # One character of the key changed: the signature no longer holds.
    status, body = fetch(url.replace("object.txt", "object.txT"))
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body
    assert b"<StringToSign>GET\n\n\n" in body


@pytest.mark.parametrize("content_type", [None, "text/plain; charset=utf-8"])
def test_boto3_default_presigned_put(
    relay_server: RelayProcess, bucket: str, content_type: str | None
) -> None:
    params = {"Bucket": bucket, "Key": "uploaded"}
    headers = {}
    if content_type:
        params["ContentType"] = content_type
        headers["Content-Type"] = content_type
    url = default_client(relay_server).generate_presigned_url("put_object", Params=params)
    assert "AWSAccessKeyId=" in url
    assert fetch(url, method="PUT", data=b"put through a URL", headers=headers)[0] == 200
    got = boto_client(relay_server).get_object(Bucket=bucket, Key="uploaded")
    assert got["Body"].read() == b"put through a URL"
    if content_type:
        assert got["ContentType"] == content_type


def test_aws_cli_presign_get(relay_server: RelayProcess, bucket: str) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "aws"), "--endpoint-url", relay_server.endpoint, "s3", "presign",
         f"s3://{bucket}/dir/the object.txt"],
        env=relay_server.client_env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    url = result.stdout.strip()
    assert "AWSAccessKeyId=" in url
    assert fetch(url) == (200, b"presigned bytes")


def test_an_expired_sigv2_url_is_refused(relay_server: RelayProcess, bucket: str) -> None:
    url = default_client(relay_server).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/the object.txt"}, ExpiresIn=-60
    )  # validly signed, and its Expires a minute ago
    status, body = fetch(url)
    assert status == 403
    assert b"<Code>AccessDenied</Code><Message>Request has expired</Message>" in body
    # Moving Expires into the future breaks the signature: Expires is what was signed.
    expires = parse_qs(urlsplit(url).query)["Expires"][0]
    status, body = fetch(url.replace(f"Expires={expires}", f"Expires={int(expires) + 7200}"))
    assert status == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in body


def test_boto3_signing_every_request_with_sigv2(
    relay_server: RelayProcess, bucket_name: str
) -> None:
    client = default_client(relay_server, signature_version="s3")
    client.create_bucket(Bucket=bucket_name)
    client.put_object(
        Bucket=bucket_name, Key="meta", Body=b"v2", Metadata={"note": "a  b"}, ContentType="a/b"
    )
    head = client.head_object(Bucket=bucket_name, Key="meta")
    assert head["Metadata"] == {"note": "a  b"}
    assert head["ContentType"] == "a/b"
    assert client.get_object(Bucket=bucket_name, Key="meta")["Body"].read() == b"v2"
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket_name)["Contents"]] == ["meta"]
    client.put_object_tagging(
        Bucket=bucket_name, Key="meta", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]}
    )
    assert client.get_object_tagging(Bucket=bucket_name, Key="meta")["TagSet"] == [
        {"Key": "k", "Value": "v"}
    ]
    client.delete_object(Bucket=bucket_name, Key="meta")
    client.delete_bucket(Bucket=bucket_name)
    wrong = boto3.session.Session().client(
        "s3", endpoint_url=relay_server.endpoint, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="not the secret", region_name=REGION,
        config=BotoConfig(signature_version="s3", retries={"max_attempts": 1}),
    )  # fmt: skip
    with pytest.raises(wrong.exceptions.ClientError) as refused:
        wrong.list_buckets()
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_s3cmd_with_signature_v2(
    relay_server: RelayProcess, bucket_name: str, tmp_path: Any
) -> None:
    address = f"{relay_server.host}:{relay_server.port}"
    config = tmp_path / "s3cmd-v2.cfg"
    config.write_text(
        f"[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\n"
        f"host_base = {address}\nhost_bucket = {address}\nbucket_location = {REGION}\n"
        "use_https = False\nsignature_v2 = True\nprogress_meter = False\n"
    )
    source = tmp_path / "source.txt"
    source.write_bytes(b"signed the old way")

    def s3cmd(*args: str) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "s3cmd"), "--config", str(config), *args],
            env=relay_server.client_env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"s3cmd {args}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    s3cmd("mb", f"s3://{bucket_name}")
    s3cmd("put", str(source), f"s3://{bucket_name}/a key")
    assert "a key" in s3cmd("ls", f"s3://{bucket_name}")
    s3cmd("get", f"s3://{bucket_name}/a key", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_bytes() == b"signed the old way"
