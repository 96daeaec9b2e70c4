# SPDX-License-Identifier: MIT
"""scripts/check-layers.sh passes on daemon/ as it is, and fails, naming
the file and the dependency, on a copy of daemon/ into which a cycle was
reintroduced: a lower module including a higher one's header (conn.c ->
worker.h), a handler calling up into the HTTP server (files.c ->
http_server_wake), two modules of one layer using each other (files.c ->
proxy_handle). A new file whose module is not in the layer list is an
error that says where to add it. README's file table names exactly the
files of daemon/."""

import re
import shutil
import subprocess

import pytest

from helpers import REPO

SCRIPT = REPO / "scripts" / "check-layers.sh"


def run(daemon_dir):
    return subprocess.run([str(SCRIPT), str(daemon_dir)], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def daemon_copy(tmp_path):
    d = tmp_path / "daemon"
    shutil.copytree(REPO / "daemon", d)
    return d


def test_layers_pass_on_the_tree():
    r = run(REPO / "daemon")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("layers ok")


def _append(path, text):
    path.write_text(path.read_text() + text)


def test_upward_include_fails(daemon_copy):
    _append(daemon_copy / "conn.c", '\n#include "worker.h"\n')
    r = run(daemon_copy)
    assert r.returncode != 0
    assert "conn.c: includes worker (worker, layer" in r.stdout, r.stdout


def test_upward_call_fails(daemon_copy):
    _append(daemon_copy / "files.c",
            "\nvoid files_poke(void *s);\nvoid files_poke(void *s)\n"
            "{\n\thttp_server_wake(s);\n}\n")
    r = run(daemon_copy)
    assert r.returncode != 0
    assert "files.c: calls http_server_wake (http, layer" in r.stdout, r.stdout


def test_same_layer_call_fails(daemon_copy):
    _append(daemon_copy / "files.c",
            "\nint files_poke(void *rq);\nint files_poke(void *rq)\n"
            "{\n\treturn proxy_handle(rq, 0, 0);\n}\n")
    r = run(daemon_copy)
    assert r.returncode != 0
    assert "files.c: calls proxy_handle (proxy, layer" in r.stdout, r.stdout


def test_call_named_in_a_comment_is_not_a_dependency(daemon_copy):
    _append(daemon_copy / "log.c", "\n/* worker_drain() and http_run() */\n")
    r = run(daemon_copy)
    assert r.returncode == 0, r.stdout


def test_unknown_module_is_an_error(daemon_copy):
    (daemon_copy / "gadget.c").write_text('#include "log.h"\n')
    r = run(daemon_copy)
    assert r.returncode != 0
    assert "gadget.c: module unknown" in r.stdout
    assert '"gadget <layer>"' in r.stdout


def test_readme_lists_every_daemon_file():
    """README's Architecture file table names exactly the files of daemon/
    (a new file needs a row: '| `x.c`, `x.h` | what it does |')."""
    text = (REPO / "README.md").read_text()
    table = text[text.index("| file | what |"):]
    table = table[:table.index("\n\n")]
    listed = set(re.findall(r"`([a-z0-9_]+\.[ch])`", table))
    present = {p.name for p in (REPO / "daemon").iterdir() if p.suffix in (".c", ".h")}
    assert not present - listed, f"README file table lacks {sorted(present - listed)}"
    assert not listed - present, f"README file table names missing {sorted(listed - present)}"
