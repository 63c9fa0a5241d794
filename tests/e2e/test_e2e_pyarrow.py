"""pyarrow's S3 filesystem with its default settings writes and reads parquet through relay.

pyarrow is the AWS C++ SDK: every upload is a multipart upload (one part for a small
file) whose parts carry a CRC64NVME checksum as an aws-chunked trailer
(STREAMING-UNSIGNED-PAYLOAD-TRAILER, even over plain http), and every GET asks for the
object's checksum (``x-amz-checksum-mode: enabled``) and checks the body against it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from e2e_helpers import ACCESS_KEY, REGION, SECRET_KEY, RelayProcess

pa = pytest.importorskip("pyarrow")
fs = pytest.importorskip("pyarrow.fs")
pq = pytest.importorskip("pyarrow.parquet")

MiB = 1 << 20
BLOB_BYTES = 256 << 10


@pytest.fixture(scope="module")
def filesystem(relay_server: RelayProcess) -> Any:
    return fs.S3FileSystem(
        endpoint_override=f"{relay_server.host}:{relay_server.port}",
        scheme="http",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
    )


def table_of(size: int) -> Any:
    """A table of about ``size`` bytes that no codec shrinks (random blobs)."""
    blobs = [os.urandom(BLOB_BYTES) for _ in range(max(1, size // BLOB_BYTES))]
    return pa.table({"n": list(range(len(blobs))), "blob": pa.array(blobs, pa.binary())})


@pytest.mark.parametrize(("size", "parts"), [(64 << 10, 1), (12 * MiB, 2)])
def test_pyarrow_writes_and_reads_parquet_through_relay(
    filesystem: Any, client: Any, bucket_name: str, size: int, parts: int
) -> None:
    client.create_bucket(Bucket=bucket_name)
    table = table_of(size)
    path = f"{bucket_name}/data/table.parquet"
    pq.write_table(table, path, filesystem=filesystem)
    assert pq.read_table(path, filesystem=filesystem).equals(table)
    head = client.head_object(Bucket=bucket_name, Key="data/table.parquet")
    assert head["ContentLength"] == filesystem.get_file_info(path).size
    assert head["ETag"].endswith(f'-{parts}"')  # written as a multipart upload of N parts


@pytest.mark.parametrize("algorithm", ["CRC64NVME", "CRC32C", "SHA256"])
def test_pyarrow_reads_objects_with_checksums(
    filesystem: Any, client: Any, bucket_name: str, algorithm: str
) -> None:
    # pyarrow's GETs ask for the checksum (x-amz-checksum-mode: enabled).
    client.create_bucket(Bucket=bucket_name)
    table = table_of(MiB)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    client.put_object(Bucket=bucket_name, Key="t.parquet", Body=data, ChecksumAlgorithm=algorithm)
    assert pq.read_table(f"{bucket_name}/t.parquet", filesystem=filesystem).equals(table)
    with filesystem.open_input_stream(f"{bucket_name}/t.parquet") as stream:
        assert stream.read() == data


@pytest.mark.parametrize(
    ("algorithm", "checksum_type"), [("CRC32", "COMPOSITE"), ("CRC64NVME", "FULL_OBJECT")]
)
def test_pyarrow_reads_multipart_objects_with_checksums(
    filesystem: Any, client: Any, bucket_name: str, algorithm: str, checksum_type: str
) -> None:
    # pyarrow's GET asks for the checksum: a composite one ("-N", of no byte range) must
    # not make its SDK refuse the body, and a full-object one must match it.
    client.create_bucket(Bucket=bucket_name)
    parts = [os.urandom(5 * MiB), os.urandom(1000)]
    upload_id = client.create_multipart_upload(
        Bucket=bucket_name, Key="o", ChecksumAlgorithm=algorithm, ChecksumType=checksum_type
    )["UploadId"]
    completed = []
    for number, data in enumerate(parts, start=1):
        response = client.upload_part(
            Bucket=bucket_name,
            Key="o",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm=algorithm,
        )
        completed.append(
            {
                "PartNumber": number,
                "ETag": response["ETag"],
                f"Checksum{algorithm}": response[f"Checksum{algorithm}"],
            }
        )
    client.complete_multipart_upload(
        Bucket=bucket_name, Key="o", UploadId=upload_id, MultipartUpload={"Parts": completed}
    )
    with filesystem.open_input_stream(f"{bucket_name}/o") as stream:
        assert stream.read() == b"".join(parts)
