"""Random ranged GETs of one object, each checked against a local copy; run as a script.

``python bench/ranged_reads.py ENDPOINT BUCKET KEY LOCAL_COPY READS READ_SIZE THREADS SEED``

Offsets are drawn uniformly (seeded) over the object; each response's bytes must equal
the same range of the local file. Prints ``reads=N errors=M``; exits 1 if any read failed.
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the harness sets them).
"""

from __future__ import annotations

import mmap
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main(argv: list[str]) -> int:
    endpoint, bucket, key, local, reads, read_size, threads, seed = argv
    count, size, workers = int(reads), int(read_size), int(threads)

    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(
            max_pool_connections=workers,
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        ),
    )
    with Path(local).open("rb") as file:
        expected = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        total = len(expected)
        chooser = random.Random(int(seed))
        offsets = [chooser.randrange(0, max(total - size, 0) + 1) for _ in range(count)]

        def read(offset: int) -> bool:
            last = min(offset + size, total) - 1
            try:
                response = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={offset}-{last}")
                body: bytes = response["Body"].read()
            except Exception as error:
                print(f"ERROR bytes={offset}-{last}: {error}", flush=True)
                return False
            if body != expected[offset : last + 1]:
                print(f"ERROR bytes={offset}-{last}: {len(body)} bytes, content differs")
                return False
            return True

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(read, offsets))
    errors = results.count(False)
    print(f"reads={count} errors={errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
