#!/bin/sh
# Makes a new elbod API key (README, Authentication): 32 random bytes from /dev/urandom, written
# in base64url without padding (43 characters, safe in an HTTP header).
#
# Usage: scripts/make-key.sh NAME ROLE [KEYS_FILE]
#   NAME       the key's name in the keys file and in elbod's debug log (letters, digits, - _ . @)
#   ROLE       act, train or admin (admin includes train, train includes act)
#   KEYS_FILE  when given, the keys-file line is appended to it (created with mode 600)
#
# Prints the key on the first line of stdout and its keys-file line, `NAME ROLE sha256hex`, on
# the second (unless KEYS_FILE is given). Only the hash goes into the keys file: hand the key to
# the client now, it is not stored anywhere. The hash is the SHA-256 of the key's bytes, the same
# as `printf %s KEY | elbod --hash-key`.
set -eu

usage() {
	echo "usage: $0 NAME ROLE [KEYS_FILE]   (ROLE: act, train or admin)" >&2
	exit 2
}
[ $# -eq 2 ] || [ $# -eq 3 ] || usage
name=$1
role=$2
case "$role" in
act | train | admin) ;;
*) usage ;;
esac
case "$name" in
"" | *[!A-Za-z0-9._@-]*)
	echo "$0: a name is letters, digits, '-', '_', '.' or '@'" >&2
	exit 2
	;;
esac
[ ${#name} -le 64 ] || {
	echo "$0: a name has at most 64 characters" >&2
	exit 2
}

key=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
hash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
line="$name $role $hash"

if [ $# -eq 3 ]; then
	file=$3
	if [ ! -e "$file" ]; then
		(umask 077 && : >"$file")
	fi
	printf '%s\n' "$line" >>"$file"
	printf '%s\n' "$key"
	echo "make-key: added key '$name' ($role) to $file; send SIGHUP to elbod (or restart it) to load it" >&2
else
	printf '%s\n%s\n' "$key" "$line"
fi
