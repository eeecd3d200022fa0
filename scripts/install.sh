#!/bin/sh
# Installs skypunch from a source build, as the Debian package does (scripts/package): the
# stripped binary, sample configuration, defaults file, man pages, init script, systemd unit,
# logrotate snippet and schema files; as root, also the `skypunch` system user, its log folder
# and the configuration's group.
#
# usage: scripts/install.sh            (after `cargo build --release`)
#
# Variables (environment):
#   DESTDIR     staging root prepended to every path                   (default empty)
#   PREFIX      installation prefix                                    (default /usr/local)
#   SYSCONFDIR  configuration root                                     (default /etc)
#   BINARY      the skypunch binary to install       (default target/release/skypunch)
#   SKYPUNCH_USER  the user the daemon runs as, written into the defaults file; created (a
#               system user with a group of the same name, no home, no shell) when absent
#               and this runs as root                                  (default skypunch)
#   MAKE_USER   no: neither create the user nor change ownership (scripts/package, whose
#               postinst does it on the target machine)                (default yes)
#
# Files (with the defaults):
#   $PREFIX/sbin/skypunch                         the daemon and command, stripped
#   $SYSCONFDIR/skypunch/skypunch.conf            mode 640, group SKYPUNCH_USER; never
#                                                 overwritten: when one exists, the new sample
#                                                 goes beside it as skypunch.conf.sample
#   $SYSCONFDIR/default/skypunch                  the init script's settings (SKYPUNCH_USER);
#                                                 never overwritten
#   $PREFIX/share/man/man8/skypunch.8, man5/skypunch.conf.5
#   $SYSCONFDIR/init.d/skypunch                   LSB init script (DAEMON set to the binary)
#   $PREFIX/lib/systemd/system/skypunch.service   systemd unit (ExecStart set to the binary)
#   $SYSCONFDIR/logrotate.d/skypunch
#   $PREFIX/share/skypunch/skypunch.sql, upgrade-*.sql, example-data.sql
#   /var/log/skypunch                             mode 750, owned by SKYPUNCH_USER
#
# The user is made on this machine even with DESTDIR set (ownership inside DESTDIR needs it).

set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
BINARY=${BINARY:-$here/target/release/skypunch}
SKYPUNCH_USER=${SKYPUNCH_USER:-skypunch}
MAKE_USER=${MAKE_USER:-yes}

if [ ! -x "$BINARY" ]; then
    echo "install.sh: $BINARY not found: run \`cargo build --release\` or set BINARY" >&2
    exit 1
fi

sbin=$PREFIX/sbin/skypunch
conf=$SYSCONFDIR/skypunch/skypunch.conf
defaults=$SYSCONFDIR/default/skypunch
logdir=/var/log/skypunch

# The user and ownership steps need root; without it they are left to the operator.
owner=""
if [ "$MAKE_USER" != no ] && [ "$(id -u)" = 0 ]; then
    if ! id -u "$SKYPUNCH_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "skypunch monitoring daemon" "$SKYPUNCH_USER"
        echo "install.sh: created the system user $SKYPUNCH_USER"
    fi
    owner=$SKYPUNCH_USER
fi

install -d "$DESTDIR$PREFIX/sbin" "$DESTDIR$SYSCONFDIR/skypunch" "$DESTDIR$SYSCONFDIR/default" \
    "$DESTDIR$PREFIX/share/man/man8" "$DESTDIR$PREFIX/share/man/man5" \
    "$DESTDIR$SYSCONFDIR/init.d" "$DESTDIR$PREFIX/lib/systemd/system" \
    "$DESTDIR$SYSCONFDIR/logrotate.d" "$DESTDIR$PREFIX/share/skypunch"

# Debug information is most of a release binary (50 MB, 7 MB stripped); the stripped one
# still backtraces by function name.
install -m 0755 -s "$BINARY" "$DESTDIR$sbin"

if [ -e "$DESTDIR$conf" ]; then
    install -m 0640 "$here/etc/skypunch.conf" "$DESTDIR$conf.sample"
    echo "install.sh: kept the existing $conf; the new sample is $conf.sample"
else
    install -m 0640 "$here/etc/skypunch.conf" "$DESTDIR$conf"
fi
if [ -n "$owner" ]; then
    # Readable by the daemon, not by others: it holds the database password.
    chgrp "$owner" "$DESTDIR$conf"
    chmod 0640 "$DESTDIR$conf"
fi

if [ -e "$DESTDIR$defaults" ]; then
    echo "install.sh: kept the existing $defaults"
else
    sed -e "s|^SKYPUNCH_USER=.*|SKYPUNCH_USER=$SKYPUNCH_USER|" "$here/etc/default/skypunch" \
        > "$DESTDIR$defaults"
    chmod 0644 "$DESTDIR$defaults"
fi

if [ -n "$owner" ]; then
    install -d -o "$owner" -g "$(id -gn "$owner")" -m 0750 "$DESTDIR$logdir"
else
    install -d -m 0750 "$DESTDIR$logdir"
fi

install -m 0644 "$here/man/skypunch.8" "$DESTDIR$PREFIX/share/man/man8/skypunch.8"
install -m 0644 "$here/man/skypunch.conf.5" "$DESTDIR$PREFIX/share/man/man5/skypunch.conf.5"

# The packaged files name /usr/sbin/skypunch and /etc/skypunch/skypunch.conf: point them at
# the paths of this installation.
edit() {
    sed -e "s|/usr/sbin/skypunch|$sbin|g" -e "s|/etc/skypunch/skypunch.conf|$conf|g" \
        -e "s|/etc/default/skypunch|$defaults|g" "$1"
}
edit "$here/etc/init.d/skypunch" > "$DESTDIR$SYSCONFDIR/init.d/skypunch"
chmod 0755 "$DESTDIR$SYSCONFDIR/init.d/skypunch"
edit "$here/etc/systemd/skypunch.service" > "$DESTDIR$PREFIX/lib/systemd/system/skypunch.service"
chmod 0644 "$DESTDIR$PREFIX/lib/systemd/system/skypunch.service"
edit "$here/etc/logrotate.d/skypunch" > "$DESTDIR$SYSCONFDIR/logrotate.d/skypunch"
chmod 0644 "$DESTDIR$SYSCONFDIR/logrotate.d/skypunch"

install -m 0644 "$here/schema/skypunch.sql" "$here/schema/upgrade-1.0-to-2.0.sql" \
    "$here/schema/upgrade-2.1-to-2.2.sql" "$here/schema/upgrade-2.2-to-2.3.sql" \
    "$here/schema/example-data.sql" \
    "$DESTDIR$PREFIX/share/skypunch/"

echo "install.sh: installed skypunch under ${DESTDIR:-/} (prefix $PREFIX)"
if [ -z "$owner" ] && [ "$MAKE_USER" != no ]; then
    echo "install.sh: not root: as root, create the user and give it the config and log folder:"
    echo "    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin $SKYPUNCH_USER"
    echo "    chgrp $SKYPUNCH_USER $conf; chown $SKYPUNCH_USER:$SKYPUNCH_USER $logdir"
fi
if [ -d /run/systemd/system ]; then
    start="systemctl daemon-reload && systemctl enable --now skypunch"
else
    start="update-rc.d skypunch defaults && service skypunch start"
fi
cat <<NEXT
Next steps, as root:
  1. $sbin -c $conf setup-db           (creates the database and its user in this host's
     MariaDB and writes them into $conf; or set [database] there by hand and run init-db)
  2. $sbin -c $conf check-config       (exit 0 when the file, database and schema are right)
  3. $start
NEXT
