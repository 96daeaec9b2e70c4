#!/bin/bash
# SPDX-License-Identifier: MIT
# Dependencies between daemon/ modules point one way: down the layer list
# below. A file may include the header of, or call a function of, its own
# module or a module of a LOWER layer; never one of its own layer or above.
# That rules out cycles by construction. Where a lower module must tell a
# higher one something, it takes a callback (as loop.c does).
#
# A module is a file-name prefix: daemon/proxy_headers.c belongs to
# "proxy", daemon/config_private.h to "config" (the longest listed name
# that is the file's name or its prefix before an "_"). A function belongs
# to the module its name starts with (STYLE.md: prefix = file name).
#
# Usage: scripts/check-layers.sh [DAEMON_DIR]   (default: daemon)
# Exit 0 when every file respects the layers; 1 with one line per
# violation ("FILE: includes/calls X (module, layer N) from Y (layer M)")
# or per file whose module is not in the list (or when gcc cannot read a
# file).
set -u -o pipefail
DIR=${1:-daemon}

# Module -> layer, lowest first. Add a new module here, in the layer of
# what it may use plus one.
LAYERS='
log 0
hex 0
ready 0
url 0
loop 1
metrics 1
config 1
identity 1
proxyproto 2
listener 2
ktls 2
crl 2
verifycache 3
gen 2
limits 2
fleet 3
reload 2
ocsp 3
tls 4
conn 4
http_respond 5
policy 6
files 6
filecache 5
proxy 6
http_framing 6
relay 7
http 7
handshake 8
worker 9
main 10'
# Function-name prefixes that are not a file name, and their module.
ALIASES='
json log
path_normalise policy
'

# One "FILE self -", then "FILE include NAME" / "FILE call NAME" lines per
# file. One gcc run strips the comments of every file (they name
# functions of every layer) and keeps the directives; its line markers
# say which file a line comes from.
deps() {
	local files=("$DIR"/*.c "$DIR"/*.h)

	[ -e "${files[0]}" ] || return 0
	gcc -w -fpreprocessed -dD -E -x c "${files[@]}" | awk '
	/^# [0-9]+ "/ {
		f = $3; gsub(/"/, "", f)
		if (!(f in seen)) { seen[f] = 1; print f, "self", "-" }
		next
	}
	/^[ \t]*#[ \t]*include[ \t]+"/ {
		n = $0; sub(/^[^"]*"/, "", n); sub(/\.h".*/, "", n)
		print f, "include", n
		next
	}
	{
		line = $0
		# string literals name modules in messages, not calls
		gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
		while (match(line, /[A-Za-z0-9_.>]?[a-z][a-z0-9_]*[ \t]*\(/)) {
			name = substr(line, RSTART, RLENGTH)
			line = substr(line, RSTART + RLENGTH)
			# a member (x.f(), x->f()) or part of a longer name
			if (name ~ /^[A-Za-z0-9_.>]/ && name !~ /^[a-z]/)
				continue
			sub(/[ \t]*\($/, "", name)
			print f, "call", name
		}
	}' | sort -u
}

deps | awk -v dir="$DIR" -v layers="$LAYERS" -v aliases="$ALIASES" '
function module_of(name,   m, best) {
	best = ""
	for (m in layer)
		if ((name == m || index(name, m "_") == 1) && length(m) > length(best))
			best = m
	return best
}
function function_module(name,   p) {
	for (p in alias)
		if (name == p || index(name, p "_") == 1)
			return alias[p]
	return module_of(name)
}
function header_exists(name,   path, line) {
	path = dir "/" name ".h"
	if ((getline line < path) >= 0) { close(path); return 1 }
	return 0
}
BEGIN {
	n = split(layers, l, "\n")
	for (i = 1; i <= n; i++) if (split(l[i], f, " ") == 2) layer[f[1]] = f[2]
	n = split(aliases, l, "\n")
	for (i = 1; i <= n; i++) if (split(l[i], f, " ") == 2) alias[f[1]] = f[2]
}
{
	file = $1; kind = $2; name = $3
	base = file; sub(/.*\//, "", base); sub(/\.[ch]$/, "", base)
	mod = module_of(base)
	if (mod == "") {
		if (kind == "self") {
			p = base; sub(/_.*/, "", p)
			print file ": module unknown to scripts/check-layers.sh: add \"" p " <layer>\" to its LAYERS list"
			bad = 1
		}
		next
	}
	if (kind == "self") next
	if (kind == "include") {
		if (!header_exists(name)) next	# include/: shared with BPF
		dep = module_of(name)
		if (dep == "") next	# reported for the header itself
	} else {
		dep = function_module(name)
		if (dep == "") next	# libc, OpenSSL, MHD, static helpers
	}
	if (dep == mod) next
	if (layer[dep] + 0 >= layer[mod] + 0) {
		print file ": " kind "s " name " (" dep ", layer " layer[dep] ") from " mod " (layer " layer[mod] "): dependencies must point to a lower layer"
		bad = 1
	}
}
END {
	if (!bad) print "layers ok"
	exit bad
}'
