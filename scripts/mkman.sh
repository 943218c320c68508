#!/bin/sh
# Writes a man page (roff, man(7) macros) for a program from its --help output, to stdout:
# a tiny stand-in for help2man, which is not a dependency. deploy.mk runs it at build time, so
# the pages always match the binaries.
#
# Usage: scripts/mkman.sh PROGRAM VERSION "one-line description" [SEE-ALSO] [FILES...]
#   PROGRAM    the built binary; `PROGRAM --help` must print the help and exit 0
#   VERSION    shown in the footer, e.g. 0.1.0
#   SEE-ALSO   e.g. "elboctl(1), systemctl(1)" (optional)
#   FILES      "path: what it is" lines for a FILES section (optional)
# The help text goes in verbatim (no fill) under DESCRIPTION, with roff's special characters
# escaped; its "Usage:" line, if any, becomes the SYNOPSIS.
set -eu
[ $# -ge 3 ] || { echo "usage: $0 PROGRAM VERSION DESCRIPTION [SEE-ALSO] [FILES...]" >&2; exit 2; }
prog=$1
version=$2
desc=$3
see=${4:-}
if [ $# -ge 4 ]; then shift 4; else shift $#; fi
name=$(basename "$prog")
help=$("$prog" --help)

# Escapes a text for roff: backslashes, hyphens (so that options copy as ASCII '-') and a
# leading '.' or "'" (which would start a request).
esc() {
	awk '{ gsub(/\\/, "\\e"); gsub(/-/, "\\-"); if ($0 ~ /^[.\047]/) $0 = "\\&" $0; print }'
}

upper=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
printf '.TH %s 1 "" "%s %s" "User Commands"\n' "$upper" "$name" "$version"
printf '.SH NAME\n%s \\- %s\n' "$name" "$(printf '%s\n' "$desc" | esc)"
usage=$(printf '%s\n' "$help" | sed -n 's/^Usage: *//p' | head -n 1)
if [ -n "$usage" ]; then
	printf '.SH SYNOPSIS\n.nf\n%s\n.fi\n' "$(printf '%s\n' "$usage" | esc)"
fi
printf '.SH DESCRIPTION\n.nf\n'
printf '%s\n' "$help" | esc
printf '.fi\n'
if [ $# -gt 0 ]; then
	printf '.SH FILES\n'
	for f in "$@"; do
		printf '.TP\n.I %s\n%s\n' "$(printf '%s\n' "${f%%: *}" | esc)" "$(printf '%s\n' "${f#*: }" | esc)"
	done
fi
if [ -n "$see" ]; then
	printf '.SH SEE ALSO\n%s\n' "$(printf '%s\n' "$see" | esc)"
fi
