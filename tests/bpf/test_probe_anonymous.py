# SPDX-License-Identifier: MIT
"""Clients without a certificate are keyed by source address prefix
([limits] anonymous_prefix_v4 = 32, anonymous_prefix_v6 = 64 by default)
and limited by the anonymous entry; certificate holders by the default
one."""

from bpfhelp import dump_stats

FP1 = "1c" * 32


def test_anonymous_by_address(instance, start_probe):
    p = start_probe(instance, "default max_conns=10\nanonymous max_conns=1\n")
    a = p.connect()
    assert a.admitted
    b = p.connect()
    assert not b.admitted
    b.close()
    certs = [p.connect(FP1, "client1") for _ in range(3)]
    assert all(c.admitted for c in certs)
    st = dump_stats(instance)
    assert st["127.0.0.1"]["fingerprint"] == ""
    assert st["127.0.0.1"]["conns_active"] == 1
    assert st["127.0.0.1"]["conns_rejected"] == 1
    for c in certs + [a]:
        c.close()


def test_anonymous_ipv6_and_mapped(instance, start_probe):
    """An IPv6 client is keyed by its /64; an IPv4 client of a dual-stack
    socket (::ffff:127.0.0.1) by its IPv4 address."""
    p = start_probe(instance, "anonymous max_conns=1\n", addr="::1")
    with p.connect() as a:
        assert a.admitted
        with p.connect() as b:
            assert not b.admitted
    st = dump_stats(instance)
    assert "::1" not in st
    assert st["::/64"]["conns_total"] == 1
    assert st["::/64"]["conns_rejected"] == 1

    q = start_probe(instance + "-m", "", addr="::ffff:127.0.0.1")
    with q.connect(host="127.0.0.1") as c:
        assert c.admitted
    assert dump_stats(instance + "-m")["127.0.0.1"]["conns_total"] == 1


def test_anonymous_ipv6_full_length(instance, start_probe):
    """anonymous_prefix_v6 = 128 keys each IPv6 address on its own."""
    p = start_probe(instance, "prefix v6=128\nanonymous max_conns=1\n",
                    addr="::1")
    with p.connect() as a:
        assert a.admitted
    st = dump_stats(instance)
    assert st["::1"]["conns_total"] == 1 and "::/64" not in st


def test_anonymous_ipv4_prefix_shares_one_entry(instance, start_probe):
    """With anonymous_prefix_v4 = 24, every address of 127.0.0.0/24 is one
    identity: an address flood from a /24 is one entry, with one limit."""
    p = start_probe(instance, "prefix v4=24\nanonymous max_conns=2\n")
    conns = [p.connect(source=f"127.0.0.{i}") for i in (2, 3)]
    assert all(c.admitted for c in conns)
    with p.connect(source="127.0.0.4") as c:
        assert not c.admitted
    st = dump_stats(instance)
    assert set(st) == {"127.0.0.0/24"}, st
    assert st["127.0.0.0/24"]["conns_active"] == 2
    assert st["127.0.0.0/24"]["conns_rejected"] == 1
    for c in conns:
        c.close()


def test_anonymous_prefix_inside_a_byte(instance, start_probe):
    """A prefix that ends inside a byte masks the rest of it:
    127.130.0.5 with anonymous_prefix_v4 = 12 is 127.128.0.0/12."""
    p = start_probe(instance, "prefix v4=12\n")
    with p.connect(source="127.130.0.5") as c:
        assert c.admitted
    assert set(dump_stats(instance)) == {"127.128.0.0/12"}
