# SPDX-License-Identifier: MIT
"""The workers keep small files open between requests (the open-file
cache, daemon/filecache.c, FILECACHE_TTL_MS = 1 s): a file replaced or
removed on disk is never served as before once that time has passed, nor
is a file opened through a root directory replaced since; a file cut
shorter in place is never answered with its old length (no
truncated body, no hung connection); a reload that points a location
elsewhere serves the new root at once."""

import signal
import time

from helpers import request, wait_until

TTL_S = 1.0  # FILECACHE_TTL_MS
WORKERS = 2


def _gw(gateway_factory, root):
    return gateway_factory(server={"workers": WORKERS}, replace_locations=True,
                           locations=[("/", {"root": root})])


def _all(gw, certs, path, n=4 * WORKERS):
    """N requests on new connections: they reach every worker."""
    return [request(gw.port, certs, path) for _ in range(n)]


def test_replaced_file_not_served_after_ttl(gateway_factory, certs, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "f.txt").write_text("old\n")
    gw = _gw(gateway_factory, root)
    assert all(r.body == b"old\n" for r in _all(gw, certs, "/f.txt"))

    (root / "f.new").write_text("new content\n")
    (root / "f.new").rename(root / "f.txt")
    time.sleep(TTL_S + 0.5)
    bodies = {r.body for r in _all(gw, certs, "/f.txt")}
    assert bodies == {b"new content\n"}, f"served {bodies} after the cache's TTL"


def test_removed_file_not_served_after_ttl(gateway_factory, certs, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "gone.txt").write_text("here\n")
    gw = _gw(gateway_factory, root)
    assert all(r.status == 200 for r in _all(gw, certs, "/gone.txt"))

    (root / "gone.txt").unlink()
    time.sleep(TTL_S + 0.5)
    statuses = {r.status for r in _all(gw, certs, "/gone.txt")}
    assert statuses == {404}, f"answered {statuses} for a removed file"


def test_file_opened_through_replaced_root_not_kept(gateway_factory, certs,
                                                    tmp_path):
    """A file first asked for late in the root descriptor's life is opened
    through the replaced root: it expires with that descriptor, so the old
    tree is never served longer than the TTL after the swap (not up to
    twice that)."""
    root = tmp_path / "www"
    root.mkdir()
    for name, text in (("a.txt", "a\n"), ("b.txt", "old\n")):
        (root / name).write_text(text)
    gw = gateway_factory(server={"workers": 1}, replace_locations=True,
                         locations=[("/", {"root": root})])
    t0 = time.monotonic()
    assert request(gw.port, certs, "/a.txt").body == b"a\n"  # opens the root
    root.rename(tmp_path / "www.old")
    root.mkdir()
    (root / "b.txt").write_text("new\n")
    swapped = time.monotonic()
    time.sleep(max(0.0, t0 + 0.85 * TTL_S - time.monotonic()))
    request(gw.port, certs, "/b.txt")  # old or new: the root's fd may be stale
    time.sleep(max(0.0, swapped + TTL_S + 0.5 - time.monotonic()))
    body = request(gw.port, certs, "/b.txt").body
    assert body == b"new\n", f"served {body} {TTL_S + 0.5} s after the root was replaced"


def test_file_cut_shorter_in_place(gateway_factory, certs, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    f = root / "s.txt"
    f.write_bytes(b"x" * 5000)
    gw = _gw(gateway_factory, root)
    assert all(len(r.body) == 5000 for r in _all(gw, certs, "/s.txt"))

    with open(f, "r+b") as fh:  # same inode: the cached descriptor sees it
        fh.truncate(0)
        fh.write(b"short\n")
    for r in _all(gw, certs, "/s.txt"):
        assert r.status == 200 and r.body == b"short\n", \
            f"{r.status}, {len(r.body)} bytes for a file cut to 6 bytes"


def test_reload_to_other_root_is_seen_at_once(gateway_factory, certs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, text in ((a, "from a\n"), (b, "from b\n")):
        d.mkdir()
        (d / "f.txt").write_text(text)
    gw = _gw(gateway_factory, a)
    assert all(r.body == b"from a\n" for r in _all(gw, certs, "/f.txt"))

    gw.conf.write_text(gw.conf.read_text().replace(str(a), str(b)))
    before = len(gw.stderr())
    gw.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reloaded" in gw.stderr()[before:], 5), gw.stderr()[before:]
    bodies = {r.body for r in _all(gw, certs, "/f.txt")}
    assert bodies == {b"from b\n"}, f"served {bodies} after the reload"
