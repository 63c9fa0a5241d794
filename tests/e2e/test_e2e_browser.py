"""A real browser against relay: headless Chromium on one origin, relay on another.

A tiny page server (this test's, on its own port, so its own origin) serves a page with a
presigned POST form. Chromium (Debian's ``chromium``, driven by playwright-core from npm;
``scripts/_system.sh`` installs both) picks a file and submits the form to relay, which
stores it and redirects back to the page's origin. That page's script then, across
origins: uploads a second file with ``fetch()`` PUT to a presigned URL (a CORS preflight,
then the PUT), reads both objects back with ``fetch()`` GET on presigned URLs, and shows an
image from relay in an ``<img>``. The test checks every byte and the image's width.
"""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import RelayProcess

# Public-read objects come with ACL support (canned ACLs, anonymous GETs). Until then the
# <img> loads from a presigned GET URL; with this True the image is uploaded public-read
# and the <img> loads from its plain, unsigned URL.
PUBLIC_READ_IMAGE = True

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT_CORE = REPO / ".cache" / "browser" / "node_modules" / "playwright-core"
DRIVER = Path(__file__).resolve().parent / "browser" / "drive.cjs"
# Chromium's first start on a loaded two-core machine is slow; the page does six requests.
BROWSER_TIMEOUT_SECONDS = 180

FORM_FILE = b"uploaded through a form\r\n--not-a-boundary\x00\xff" * 50
FETCH_FILE = bytes(range(256)) * 40


def png(width: int, height: int) -> bytes:
    """A small opaque RGB PNG (the browser must decode it to report its width)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xd0\x40\x10" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


IMAGE = png(7, 3)


def _missing_tools() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian's chromium; scripts/_system.sh installs it)"
    if shutil.which("node") is None:
        return "node is missing (playwright-core needs it)"
    if not PLAYWRIGHT_CORE.is_dir():
        return f"{PLAYWRIGHT_CORE} is missing (scripts/_system.sh installs it from npm)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        _missing_tools() is not None, reason=f"BROWSER TEST SKIPPED: {_missing_tools()}"
    ),
]


FORM_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>upload</title></head><body>
<form method="post" enctype="multipart/form-data" action="{action}">
{hidden}
<input type="file" name="file">
<button type="submit">upload</button>
</form></body></html>
"""

DONE_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>done</title></head><body>
<img id="image" alt="from relay">
<script>
const plan = {plan};
const hex = (buffer) => Array.from(new Uint8Array(buffer),
  (b) => b.toString(16).padStart(2, "0")).join("");
(async () => {{
  const result = {{ redirect: Object.fromEntries(new URLSearchParams(location.search)) }};
  try {{
    const put = await fetch(plan.putUrl, {{
      method: "PUT", body: Uint8Array.from(atob(plan.fetchFile), (c) => c.charCodeAt(0)),
    }});
    result.putStatus = put.status;
    result.putEtag = put.headers.get("ETag");
    const formGet = await fetch(plan.formGetUrl);
    result.formGetStatus = formGet.status;
    result.formBytes = hex(await formGet.arrayBuffer());
    const putGet = await fetch(plan.putGetUrl);
    result.putGetStatus = putGet.status;
    result.putBytes = hex(await putGet.arrayBuffer());
    const image = document.getElementById("image");
    await new Promise((resolve, reject) => {{
      image.onload = resolve;
      image.onerror = () => reject(new Error("the image did not load"));
      image.src = plan.imageUrl;
    }});
    result.imageWidth = image.naturalWidth;
    result.imageHeight = image.naturalHeight;
  }} catch (error) {{
    result.error = String(error);
  }}
  window.relayResult = result;
}})();
</script></body></html>
"""


class PageServer:
    """The page's origin: serves the form at / and the script's page at /done."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = pages.get(self.path.partition("?")[0])
                self.send_response(200 if page is not None else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(page or b"")))
                self.end_headers()
                self.wfile.write(page or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def page_server() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


def _hidden_inputs(fields: dict[str, str]) -> str:
    return "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )


def test_a_page_on_another_origin_uploads_reads_and_shows_objects(
    relay_server: RelayProcess, client: Any, bucket: str, page_server: PageServer, tmp_path: Path
) -> None:
    origin = page_server.origin
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": [origin],
                    "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 60,
                }
            ]
        },
    )
    done = f"{origin}/done"
    post = client.generate_presigned_post(
        bucket,
        "form/${filename}",
        Fields={"success_action_redirect": done},
        Conditions=[{"success_action_redirect": done}, ["content-length-range", 1, 1 << 20]],
        ExpiresIn=600,
    )
    image_extra = {"ACL": "public-read"} if PUBLIC_READ_IMAGE else {}
    client.put_object(
        Bucket=bucket, Key="img/pixel.png", Body=IMAGE, ContentType="image/png", **image_extra
    )

    def presign(method: str, key: str) -> str:
        url: str = client.generate_presigned_url(
            method, Params={"Bucket": bucket, "Key": key}, ExpiresIn=600
        )
        return url

    image_url = (
        f"{relay_server.endpoint}/{bucket}/img/pixel.png"
        if PUBLIC_READ_IMAGE
        else presign("get_object", "img/pixel.png")
    )
    plan = {
        "putUrl": presign("put_object", "fetch/put.bin"),
        "fetchFile": base64.b64encode(FETCH_FILE).decode(),
        "formGetUrl": presign("get_object", "form/hello.txt"),
        "putGetUrl": presign("get_object", "fetch/put.bin"),
        "imageUrl": image_url,
    }
    page_server.pages["/"] = FORM_PAGE.format(
        action=post["url"], hidden=_hidden_inputs(post["fields"])
    ).encode()
    page_server.pages["/done"] = DONE_PAGE.format(plan=json.dumps(plan)).encode()
    upload = tmp_path / "hello.txt"
    upload.write_bytes(FORM_FILE)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()

    completed = subprocess.run(
        ["node", str(DRIVER), str(PLAYWRIGHT_CORE), str(CHROMIUM), f"{origin}/",
         str(upload), str(profile)],
        capture_output=True,
        timeout=BROWSER_TIMEOUT_SECONDS,
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-4000:]
    result = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    assert "error" not in result, result

    # The form upload: stored under the picked file's name, redirected back with its ETag.
    stored = client.get_object(Bucket=bucket, Key="form/hello.txt")
    assert stored["Body"].read() == FORM_FILE
    assert result["redirect"]["bucket"] == bucket
    assert result["redirect"]["key"] == "form/hello.txt"
    assert result["redirect"]["etag"] == stored["ETag"]
    # fetch() PUT across origins (preflight, then the PUT, its ETag exposed), and reads.
    assert result["putStatus"] == 200
    assert result["putEtag"] == client.head_object(Bucket=bucket, Key="fetch/put.bin")["ETag"]
    assert client.get_object(Bucket=bucket, Key="fetch/put.bin")["Body"].read() == FETCH_FILE
    assert result["formGetStatus"] == 200
    assert bytes.fromhex(result["formBytes"]) == FORM_FILE
    assert result["putGetStatus"] == 200
    assert bytes.fromhex(result["putBytes"]) == FETCH_FILE
    # The image was decoded by the browser: its size is the PNG's.
    assert (result["imageWidth"], result["imageHeight"]) == (7, 3)
