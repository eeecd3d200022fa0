#!/bin/sh
# Installs skypunch: binary, sample configuration, man pages, init script, systemd unit,
# logrotate snippet and schema files.
#
# usage: scripts/install.sh            (after `cargo build --release`)
#
# Variables (environment):
#   DESTDIR     staging root prepended to every path, for packaging    (default empty)
#   PREFIX      installation prefix                                    (default /usr/local)
#   SYSCONFDIR  configuration root                                     (default /etc)
#   BINARY      the skypunch binary to install       (default target/release/skypunch)
#
# Files (with the defaults):
#   $PREFIX/sbin/skypunch                         the daemon and command
#   $SYSCONFDIR/skypunch/skypunch.conf            mode 640; never overwritten: when one
#                                                 exists, the new sample goes beside it as
#                                                 skypunch.conf.sample
#   $PREFIX/share/man/man8/skypunch.8, man5/skypunch.conf.5
#   $SYSCONFDIR/init.d/skypunch                   LSB init script (DAEMON set to the binary)
#   $PREFIX/lib/systemd/system/skypunch.service   systemd unit (ExecStart set to the binary)
#   $SYSCONFDIR/logrotate.d/skypunch
#   $PREFIX/share/skypunch/skypunch.sql, upgrade-1.0-to-2.0.sql
#
# Afterwards, as root: create the user (adduser --system --group --no-create-home skypunch),
# chgrp skypunch $SYSCONFDIR/skypunch/skypunch.conf, set the database in it, run
# `skypunch init-db`, then `systemctl daemon-reload; systemctl enable --now skypunch` (or
# `update-rc.d skypunch defaults; service skypunch start`).

set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
BINARY=${BINARY:-$here/target/release/skypunch}

if [ ! -x "$BINARY" ]; then
    echo "install.sh: $BINARY not found: run \`cargo build --release\` or set BINARY" >&2
    exit 1
fi

sbin=$PREFIX/sbin/skypunch
conf=$SYSCONFDIR/skypunch/skypunch.conf

install -d "$DESTDIR$PREFIX/sbin" "$DESTDIR$SYSCONFDIR/skypunch" \
    "$DESTDIR$PREFIX/share/man/man8" "$DESTDIR$PREFIX/share/man/man5" \
    "$DESTDIR$SYSCONFDIR/init.d" "$DESTDIR$PREFIX/lib/systemd/system" \
    "$DESTDIR$SYSCONFDIR/logrotate.d" "$DESTDIR$PREFIX/share/skypunch"

install -m 0755 "$BINARY" "$DESTDIR$sbin"

if [ -e "$DESTDIR$conf" ]; then
    install -m 0640 "$here/etc/skypunch.conf" "$DESTDIR$conf.sample"
    echo "install.sh: kept the existing $conf; the new sample is $conf.sample"
else
    install -m 0640 "$here/etc/skypunch.conf" "$DESTDIR$conf"
fi

install -m 0644 "$here/man/skypunch.8" "$DESTDIR$PREFIX/share/man/man8/skypunch.8"
install -m 0644 "$here/man/skypunch.conf.5" "$DESTDIR$PREFIX/share/man/man5/skypunch.conf.5"

# The packaged files name /usr/sbin/skypunch and /etc/skypunch/skypunch.conf: point them at
# the paths of this installation.
edit() {
    sed -e "s|/usr/sbin/skypunch|$sbin|g" -e "s|/etc/skypunch/skypunch.conf|$conf|g" "$1"
}
edit "$here/etc/init.d/skypunch" > "$DESTDIR$SYSCONFDIR/init.d/skypunch"
chmod 0755 "$DESTDIR$SYSCONFDIR/init.d/skypunch"
edit "$here/etc/systemd/skypunch.service" > "$DESTDIR$PREFIX/lib/systemd/system/skypunch.service"
chmod 0644 "$DESTDIR$PREFIX/lib/systemd/system/skypunch.service"
edit "$here/etc/logrotate.d/skypunch" > "$DESTDIR$SYSCONFDIR/logrotate.d/skypunch"
chmod 0644 "$DESTDIR$SYSCONFDIR/logrotate.d/skypunch"

install -m 0644 "$here/schema/skypunch.sql" "$here/schema/upgrade-1.0-to-2.0.sql" \
    "$DESTDIR$PREFIX/share/skypunch/"

echo "install.sh: installed skypunch under ${DESTDIR:-/} (prefix $PREFIX)"
