"""boto3 with virtual-hosted addressing against relay: create, put, get (SigV4 headers),
and presigned GET and PUT URLs in both styles and both signature versions (boto3's default
presigning is SigV2). Usage: python boto3_virtual.py ENDPOINT BUCKET; prints one JSON line.
"""

import http.client
import json
import sys
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

endpoint, bucket = sys.argv[1:]


def client(style: str, signature_version: str | None = None):
    config = {"s3": {"addressing_style": style}, "retries": {"max_attempts": 1}}
    if signature_version:
        config["signature_version"] = signature_version
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(**config),
    )


def fetch(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    connection.request(method, f"{parts.path}?{parts.query}", body=body)
    response = connection.getresponse()
    return response.status, response.read().decode()


virtual = client("virtual", "s3v4")
virtual.create_bucket(Bucket=bucket)
virtual.put_object(Bucket=bucket, Key="a b/c.txt", Body=b"virtually hosted")
result = {
    "get": virtual.get_object(Bucket=bucket, Key="a b/c.txt")["Body"].read().decode(),
    "presigned": {},
}
for style in ("virtual", "path"):
    for version in (None, "s3v4"):
        signer = client(style, version)
        name = f"{style}-{version or 'default'}"
        put_url = signer.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": name}
        )
        put_status, _ = fetch(put_url, "PUT", name.encode())
        get_url = signer.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": name}
        )
        result["presigned"][name] = {
            "host": urlsplit(get_url).netloc,
            "sigv2": "AWSAccessKeyId=" in get_url,
            "put": put_status,
            "get": fetch(get_url),
        }
print(json.dumps(result))
