# Shared by scripts/quickstart, scripts/test and .ci/run: install what is missing and start
# MariaDB when it is not running. Sourced, not run. Needs root (or sudo) for installs.

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

say() { printf '==> %s\n' "$*" >&2; }

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ensure_cmd COMMAND PACKAGE...: installs the packages when COMMAND is not on the PATH.
ensure_cmd() {
    local cmd=$1; shift
    if ! command -v "$cmd" >/dev/null 2>&1; then
        say "installing $* (no $cmd found)"
        apt_install "$@"
    fi
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        say "cargo not found: install a current Rust toolchain (https://rustup.rs), then run this again"
        exit 1
    fi
    ensure_cmd cc gcc libc6-dev
    ensure_cmd pkg-config pkg-config
}

mariadb_up() {
    mariadb-admin -uroot -h127.0.0.1 --protocol=tcp --connect-timeout=2 ping >/dev/null 2>&1 ||
        mariadb-admin -uroot --connect-timeout=2 ping >/dev/null 2>&1
}

# ensure_mariadb: installs MariaDB when absent and starts it when it does not answer.
ensure_mariadb() {
    ensure_cmd mariadb mariadb-client
    if [ ! -x /usr/sbin/mariadbd ]; then
        say "installing mariadb-server"
        apt_install mariadb-server
    fi
    if mariadb_up; then return 0; fi
    say "starting MariaDB"
    $SUDO mkdir -p /run/mysqld
    $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
    if [ ! -d /var/lib/mysql/mysql ]; then
        $SUDO mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    for _ in $(seq 1 60); do
        if mariadb_up; then return 0; fi
        sleep 0.5
    done
    say "MariaDB did not start within 30 s: see /var/log/mysql or run /usr/sbin/mariadbd --user=mysql by hand"
    exit 1
}

# root_sql: runs SQL as the MariaDB root user (over TCP with an empty password, as on CI
# machines, or through the unix socket as on a fresh Debian install).
root_sql() {
    if mariadb -uroot -h127.0.0.1 --protocol=tcp -e 'SELECT 1' >/dev/null 2>&1; then
        mariadb -uroot -h127.0.0.1 --protocol=tcp "$@"
    else
        $SUDO mariadb -uroot "$@"
    fi
}

# target_dir: cargo's target folder (CARGO_TARGET_DIR, a config's build.target-dir, or ./target).
target_dir() {
    cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'
}
