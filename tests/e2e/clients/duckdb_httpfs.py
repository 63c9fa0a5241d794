"""DuckDB's httpfs in its default URL style (vhost) against relay: write and read back
parquet and CSV, and glob the bucket. The extension is loaded from the
duckdb-extension-httpfs package, never downloaded (auto-install is off).

Usage: python duckdb_httpfs.py ENDPOINT_HOST_PORT BUCKET; prints one JSON line. The bucket
must exist.
"""

import json
import sys
from pathlib import Path

import duckdb
import duckdb_extension_httpfs

endpoint, bucket = sys.argv[1:]
extension = next(
    Path(duckdb_extension_httpfs.__file__).parent.glob("extensions/*/httpfs.duckdb_extension")
)
con = duckdb.connect(
    config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
)
con.execute(f"LOAD '{extension}'")
con.execute(
    "CREATE SECRET relay (TYPE s3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1', "
    f"ENDPOINT '{endpoint}', USE_SSL false)"
)
url_style = con.execute("SELECT current_setting('s3_url_style')").fetchone()[0]
con.execute(
    "COPY (SELECT range AS n, 'row ' || range AS label FROM range(5000)) "
    f"TO 's3://{bucket}/tables/numbers.parquet' (FORMAT parquet)"
)
con.execute(
    "COPY (SELECT range AS n, range * range AS square FROM range(100)) "
    f"TO 's3://{bucket}/tables/squares.csv' (FORMAT csv, HEADER)"
)
parquet = con.execute(
    f"SELECT count(*), sum(n), max(label) FROM 's3://{bucket}/tables/numbers.parquet'"
).fetchone()
csv = con.execute(
    f"SELECT count(*), sum(square) FROM read_csv('s3://{bucket}/tables/squares.csv')"
).fetchone()
files = [
    row[0] for row in con.execute(f"SELECT file FROM glob('s3://{bucket}/tables/*')").fetchall()
]
print(
    json.dumps(
        {
            "url_style": url_style,
            "parquet": list(parquet),
            "csv": list(csv),
            "files": sorted(files),
        }
    )
)
