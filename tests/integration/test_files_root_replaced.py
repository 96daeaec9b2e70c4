# SPDX-License-Identifier: MIT
"""The worker keeps its root directory open between requests: a root that
is replaced on disk (renamed away, a new directory put at the same path)
is served from the new directory within a few seconds, and a root that
disappears answers 500 instead of serving the old files."""

from helpers import request, wait_until


def test_replaced_root_is_seen(gateway_factory, certs, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "f.txt").write_text("old\n")
    gw = gateway_factory(server={"workers": 1}, replace_locations=True,
                         locations=[("/", {"root": root})])
    assert request(gw.port, certs, "/f.txt").body == b"old\n"

    root.rename(tmp_path / "www.old")
    root.mkdir()
    (root / "f.txt").write_text("new\n")
    assert wait_until(lambda: request(gw.port, certs, "/f.txt").body == b"new\n", 5), \
        "still serving the replaced root directory"

    root.rename(tmp_path / "www.gone")
    assert wait_until(lambda: request(gw.port, certs, "/f.txt").status == 500, 5), \
        "still serving a root directory that no longer exists"
