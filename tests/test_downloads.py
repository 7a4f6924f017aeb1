"""Downloads: the recorded DIV2K sums, size checks, resumable partial files (msnlan.downloads)."""
from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from msnlan.downloads import fetch_archive, part_path
from msnlan.errors import DataError
from msnlan.plan import read_checksums

REPO = Path(__file__).resolve().parent.parent
PAYLOAD = bytes(range(256)) * 400  # 102400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """A local HTTP server of PAYLOAD that honours Range requests (or not) and can cut a response."""

    def __init__(self, ranges: bool = True):
        self.ranges, self.cut_after, self.requests = ranges, None, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.split("=")[1].rstrip("-")) if rng and server.ranges else 0
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:  # the connection drops mid-transfer
                    body = body[:server.cut_after]
                    server.cut_after = None
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pack.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_div2k_sums_and_sizes_are_recorded_with_their_source():
    table = read_checksums(REPO / "config" / "checksums.tsv")
    train, valid = table["DIV2K_train_HR.zip"], table["DIV2K_valid_HR.zip"]
    assert train["sha256"] == "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"
    assert train["bytes"] == 3_530_603_713
    assert valid["sha256"] == "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"
    assert valid["bytes"] == 448_993_893
    assert all("TensorFlow Datasets url_checksums/div2k.txt" in row["note"] for row in (train, valid))


def test_interrupted_download_is_kept_and_continued(server, tmp_path):
    archive = tmp_path / "archives" / "pack.zip"
    server.cut_after = 30000
    with pytest.raises(DataError, match=r"stopped at 30000 of 102400 bytes; run again to continue"):
        fetch_archive(server.url, archive, size=len(PAYLOAD), sha256=SHA, log=lambda m: None)
    assert not archive.exists() and part_path(archive).stat().st_size == 30000  # never taken as complete
    notes = []
    assert fetch_archive(server.url, archive, size=len(PAYLOAD), sha256=SHA, log=notes.append) == SHA
    assert server.requests[-1] == "bytes=30000-" and any("continuing" in n for n in notes)
    assert archive.read_bytes() == PAYLOAD and not part_path(archive).exists()


def test_partial_file_is_replaced_where_the_server_cannot_continue(tmp_path):
    s = Server(ranges=False)
    try:
        archive = tmp_path / "pack.zip"
        part_path(archive).write_bytes(b"x" * 500)  # stale bytes: must not end up in the archive
        assert fetch_archive(s.url, archive, size=len(PAYLOAD), sha256=SHA, log=lambda m: None) == SHA
        assert archive.read_bytes() == PAYLOAD
    finally:
        s.close()


def test_wrong_size_fails_before_downloading(server, tmp_path):
    archive = tmp_path / "pack.zip"
    with pytest.raises(DataError, match="announces 102400 bytes, but the checksums table records 999"):
        fetch_archive(server.url, archive, size=999, sha256=SHA, log=lambda m: None)
    assert not archive.exists() and not part_path(archive).exists()


def test_wrong_sum_deletes_and_unknown_sum_needs_permission(server, tmp_path):
    archive = tmp_path / "pack.zip"
    with pytest.raises(DataError, match="differs from the recorded"):
        fetch_archive(server.url, archive, size=len(PAYLOAD), sha256="0" * 64, log=lambda m: None)
    assert not archive.exists() and not part_path(archive).exists()
    with pytest.raises(DataError, match="no sha256 recorded"):
        fetch_archive(server.url, archive, size=None, sha256=None, log=lambda m: None)
    assert fetch_archive(server.url, archive, size=None, sha256=None, allow_unverified=True,
                         log=lambda m: None) == SHA
