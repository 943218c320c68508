#!/bin/sh
# Writes the default config file, /etc/elbod/elbod.conf, to stdout, from `elbod --help`: every
# file key, commented out, with its meaning and built-in default, so the file follows the
# settings table of server/config.c. deploy.mk runs it at build time.
#
# Usage: scripts/mkconf.sh ELBOD [KEY=VALUE...]
#   KEY=VALUE  settings written active (uncommented), e.g. data_dir=/var/lib/elbod
set -eu
[ $# -ge 1 ] || { echo "usage: $0 ELBOD [KEY=VALUE...]" >&2; exit 2; }
elbod=$1
shift
version=$("$elbod" --version)

cat <<HEAD
# $version settings, read by \`elbod --config FILE\` (the systemd unit names
# /etc/elbod/elbod.conf). Lines are \`key = value\`; \`#\` starts a comment line; a value may be
# "quoted". A commented-out key keeps its built-in default, shown here. Command-line flags win
# over this file, which wins over ELBOD_* environment variables (elbod --help, README
# "Configuration"). \`elbod --config FILE --print-config\` prints the effective settings.
# SIGHUP (systemctl reload elbod) re-reads this file and applies log_level and log_format; the
# other settings apply at the next start (systemctl restart elbod).
HEAD

# --help lists each setting as:
#   --flag <type>
#       help text (one or more lines)
#       file key: KEY   env: VAR   default: VALUE
"$elbod" --help | awk -v active="$*" '
BEGIN {
	n = split(active, kv, " ")
	for (i = 1; i <= n; i++) {
		eq = index(kv[i], "=")
		if (eq > 1)
			set[substr(kv[i], 1, eq - 1)] = substr(kv[i], eq + 1)
	}
}
/^  --/ { flag = $1; help = ""; next }
/^      file key: / {
	key = $3; env = $5; def = $0
	sub(/.*   default: /, "", def)
	if (key == "(none)")
		next
	if (def == "(empty)")
		def = "\"\""
	printf "\n%s", help
	printf "# (flag %s, environment %s)\n", flag, env
	if (key in set) {
		printf "# default: %s\n", def
		v = set[key]
		printf "%s = %s\n", key, v
		used[key] = 1
	} else {
		printf "#%s = %s\n", key, def
	}
	next
}
/^      / { line = $0; sub(/^ +/, "", line); help = help "# " line "\n"; next }
END {
	for (k in set)
		if (!(k in used)) {
			printf "mkconf: unknown key %s\n", k > "/dev/stderr"
			exit 1
		}
}'
