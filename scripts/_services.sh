# Sourced by scripts/check: makes sure the programs the end-to-end tests start are installed
# (PostgreSQL's initdb/postgres, redis-server, Debian's chromium for the dashboard tests,
# driven by Playwright with executable_path: no browser download, the headless
# qbittorrent-nox, and prometheus for its promtool). The tests start their own private
# instances on free loopback ports; whatever the Debian packages start on 5432/6379 is not
# used (the prometheus server the package would start is stopped and disabled). Idempotent and quick when all
# are present; installs them with apt-get otherwise.

_services_missing() {  # prints the Debian packages whose programs are missing
    local missing=()
    if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
        missing+=(postgresql)
    fi
    if ! command -v redis-server >/dev/null; then
        missing+=(redis-server)
    fi
    if [ ! -x /usr/bin/chromium ]; then
        missing+=(chromium)
    fi
    if [ ! -x /usr/bin/qbittorrent-nox ]; then
        missing+=(qbittorrent-nox)
    fi
    if [ ! -x /usr/bin/promtool ]; then
        missing+=(prometheus)  # promtool validates and unit-tests the shipped alert rules
    fi
    echo "${missing[@]}"
}

services_installed() {  # install what is missing (as root), or say what to install and fail
    local missing
    missing=$(_services_missing)
    [ -z "$missing" ] && return 0
    if [ "$EUID" -ne 0 ]; then
        echo "the end-to-end tests need: $missing" >&2
        echo "install them with: sudo apt-get install -y --no-install-recommends $missing" >&2
        exit 1
    fi
    echo "== installing $missing (for the end-to-end tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    if [[ " $missing " == *" prometheus "* ]] && command -v systemctl >/dev/null; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true  # only promtool is wanted
    fi
    missing=$(_services_missing)
    if [ -n "$missing" ]; then
        echo "still missing after apt-get install: $missing" >&2
        exit 1
    fi
}
