# shellcheck shell=bash
# Shared helpers for scripts/test and scripts/dev. Source it; do not run it.
#
# What lives here: logging, URL parsing, and "find or start" for the two services the
# hub needs (PostgreSQL and RabbitMQ). Everything is plain bash 3.2+ so it also works
# with the bash that ships on macOS.
#
# Knobs (environment):
#   REDRESS_SERVICE_WAIT_SECONDS  how long to wait for a service to answer (default 90)
#   REDRESS_START_SERVICES        auto (default): start a local service whose port is
#                                 closed; never: only check, fail if it is down
#   REDRESS_RABBITMQCTL           how to run rabbitmqctl (default "rabbitmqctl"), e.g.
#                                 "docker compose exec -T rabbitmq rabbitmqctl"

if [ -z "${BASH_VERSION:-}" ]; then
    echo "scripts/lib.sh needs bash" >&2
    # shellcheck disable=SC2317 # exit only runs when the file is executed, not sourced
    return 1 2>/dev/null || exit 1
fi

# The binaries read every REDRESS_* variable as a setting and refuse unknown ones, so the
# scripts' own knobs are read here and removed from the environment the binaries (and the
# tests) inherit. REDRESS_TEST_* variables are the exception: the loader ignores them.
START_SERVICES=${REDRESS_START_SERVICES:-auto}
SERVICE_WAIT_SECONDS=${REDRESS_SERVICE_WAIT_SECONDS:-90}
RABBITMQCTL=${REDRESS_RABBITMQCTL:-}
unset REDRESS_START_SERVICES REDRESS_SERVICE_WAIT_SECONDS REDRESS_RABBITMQCTL

# ---------------------------------------------------------------------------------------
# Output

if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then
    _c_bold=$'\033[1m'
    _c_yellow=$'\033[33m'
    _c_red=$'\033[31m'
    _c_off=$'\033[0m'
else
    _c_bold='' _c_yellow='' _c_red='' _c_off=''
fi

# say MESSAGE...: a step the script is taking (stderr, so stdout stays clean).
say() { printf '%s==>%s %s\n' "$_c_bold" "$_c_off" "$*" >&2; }
# note MESSAGE...: a detail under the current step.
note() { printf '    %s\n' "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$_c_yellow" "$_c_off" "$*" >&2; }
die() {
    printf '%serror:%s %s\n' "$_c_red" "$_c_off" "$*" >&2
    exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

need() {
    local cmd=$1 hint=$2
    have "$cmd" || die "'$cmd' not found. $hint"
}

# repo_root: the checkout this script belongs to.
repo_root() {
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
}

# random_suffix: 10 lowercase hex characters. Lowercase because Postgres folds
# unquoted identifiers and RabbitMQ names are case-sensitive: one spelling everywhere.
random_suffix() {
    od -An -N5 -tx1 /dev/urandom | tr -d ' \n'
}

# ---------------------------------------------------------------------------------------
# URLs

# parse_url URL: sets URL_SCHEME, URL_USERINFO (without '@'), URL_USER, URL_HOST,
# URL_PORT (empty when absent), URL_PATH (with leading '/', may be empty), URL_QUERY
# (with leading '?', may be empty) and URL_BASE (scheme://userinfo@host:port, no path).
# Only the forms these scripts need: scheme://[user[:pass]@]host[:port][/path][?query].
# shellcheck disable=SC2034 # the URL_* globals are the result, read by the callers
parse_url() {
    local url=$1
    local re='^([a-zA-Z][a-zA-Z0-9+.-]*)://(([^@/?]*)@)?(\[[^]/]*\]|[^:/?]*)(:([0-9]+))?(/[^?]*)?(\?.*)?$'
    if [[ ! $url =~ $re ]]; then
        die "cannot parse URL '$(redact_url "$url")' (expected scheme://[user[:password]@]host[:port][/path])"
    fi
    URL_SCHEME=${BASH_REMATCH[1]}
    URL_USERINFO=${BASH_REMATCH[3]}
    URL_HOST=${BASH_REMATCH[4]}
    URL_PORT=${BASH_REMATCH[6]}
    URL_PATH=${BASH_REMATCH[7]}
    URL_QUERY=${BASH_REMATCH[8]}
    URL_USER=${URL_USERINFO%%:*}
    URL_BASE="$URL_SCHEME://"
    if [ -n "$URL_USERINFO" ]; then URL_BASE+="$URL_USERINFO@"; fi
    URL_BASE+=$URL_HOST
    if [ -n "$URL_PORT" ]; then URL_BASE+=":$URL_PORT"; fi
}

# redact_url URL: the URL with any password replaced by '***', for messages.
redact_url() {
    printf '%s' "$1" | sed -E 's#^([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/]*):[^@/]*@#\1:***@#'
}

# is_local_host HOST: true for the loopback names this machine can start services for.
is_local_host() {
    case $1 in
        127.0.0.1 | localhost | ::1 | '[::1]') return 0 ;;
        *) return 1 ;;
    esac
}

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() {
    local host=$1 port=$2
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
    if have timeout; then
        timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
    else
        bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
    fi
}

# as_root CMD...: run CMD as root (directly, or through password-less sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif have sudo && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 126
    fi
}

# wait_until SECONDS WHAT CMD...: run CMD every second until it succeeds; die after
# SECONDS with a message naming WHAT.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local waited=0
    until "$@"; do
        if [ "$waited" -ge "$seconds" ]; then
            die "$what did not answer within ${seconds}s (set REDRESS_SERVICE_WAIT_SECONDS to wait longer)"
        fi
        if [ "$waited" -eq 0 ]; then note "waiting for $what ..."; fi
        sleep 1
        waited=$((waited + 1))
    done
}

_wait_seconds() { printf '%s' "$SERVICE_WAIT_SECONDS"; }

_may_start() {
    case $START_SERVICES in
        auto) return 0 ;;
        never) return 1 ;;
        *) die "REDRESS_START_SERVICES must be 'auto' or 'never', not '$START_SERVICES'" ;;
    esac
}

# ---------------------------------------------------------------------------------------
# PostgreSQL

PSQL_FLAGS=(-X -q -w -v ON_ERROR_STOP=1)

# pg_url_with_db URL DBNAME: URL pointing at another database on the same server.
pg_url_with_db() {
    parse_url "$1"
    printf '%s/%s%s' "$URL_BASE" "$2" "$URL_QUERY"
}

_pg_accepting() {
    if have pg_isready; then
        pg_isready -q -d "$1" -t 2
    else
        psql "${PSQL_FLAGS[@]}" -At -d "$1" -c 'select 1' >/dev/null 2>&1
    fi
}

# _pg_start_local PORT: start the Debian cluster listening on PORT.
_pg_start_local() {
    local port=$1 version='' cluster='' out
    if have pg_lsclusters; then
        # Columns: version cluster port status owner datadir logfile. Pick the cluster
        # configured for the port we need, not just any.
        read -r version cluster < <(pg_lsclusters -h 2>/dev/null | awk -v p="$port" '$3 == p { print $1, $2; exit }') || true
    elif [ -d /etc/postgresql ]; then
        version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
        cluster=main
    fi
    if [ -z "$version" ] || ! have pg_ctlcluster; then
        die "PostgreSQL is not answering on port $port and no local cluster was found to start.
    Start PostgreSQL yourself, or point REDRESS_TEST_PG_ADMIN_URL / REDRESS_DATABASE_URL at a running server."
    fi
    say "Starting PostgreSQL $version/$cluster (port $port was closed)"
    if ! out=$(as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start 2>&1); then
        printf '%s\n' "$out" >&2
        die "could not start PostgreSQL: run as root, or start it yourself:
    pg_ctlcluster --skip-systemctl-redirect $version $cluster start"
    fi
}

# ensure_postgres ADMIN_URL: make sure the server behind ADMIN_URL answers queries,
# starting a local Debian cluster if its port is closed.
ensure_postgres() {
    local url=$1 port host
    need psql "Install the PostgreSQL client (Debian: apt-get install postgresql-client)."
    parse_url "$url"
    host=${URL_HOST:-127.0.0.1}
    port=${URL_PORT:-5432}
    if ! port_open "$host" "$port"; then
        if is_local_host "$host" && _may_start; then
            _pg_start_local "$port"
        else
            die "PostgreSQL is not answering on $host:$port. Start it, or set the URL to a running server."
        fi
    fi
    wait_until "$(_wait_seconds)" "PostgreSQL on $host:$port" _pg_accepting "$url"
    local err
    if ! err=$(psql "${PSQL_FLAGS[@]}" -At -d "$url" -c 'select 1' 2>&1 >/dev/null); then
        die "PostgreSQL on $host:$port refused $(redact_url "$url"):
    $err"
    fi
    note "PostgreSQL is up on $host:$port"
}

# pg_server_version_num ADMIN_URL: e.g. 150020.
pg_server_version_num() {
    psql "${PSQL_FLAGS[@]}" -At -d "$1" -c 'show server_version_num'
}

# pg_create_database_if_missing ADMIN_URL NAME
pg_create_database_if_missing() {
    local url=$1 name=$2 exists
    exists=$(psql "${PSQL_FLAGS[@]}" -At -d "$url" -v name="$name" <<'SQL'
select 1 from pg_database where datname = :'name';
SQL
)
    if [ "$exists" = 1 ]; then
        return 1
    fi
    psql "${PSQL_FLAGS[@]}" -d "$url" -v name="$name" <<'SQL'
select format('create database %I', :'name') \gexec
SQL
}

# pg_drop_databases_with_prefix ADMIN_URL PREFIX: drop every database whose name starts
# with PREFIX, closing its connections. starts_with() rather than LIKE because '_' is a
# LIKE wildcard and our names are full of it.
pg_drop_databases_with_prefix() {
    local url=$1 prefix=$2 version
    version=$(pg_server_version_num "$url")
    if [ "$version" -ge 130000 ]; then
        psql "${PSQL_FLAGS[@]}" -d "$url" -v prefix="$prefix" <<'SQL'
select format('alter database %I is_template false', datname)
  from pg_database where starts_with(datname, :'prefix') and datistemplate \gexec
select format('drop database if exists %I with (force)', datname)
  from pg_database where starts_with(datname, :'prefix') \gexec
SQL
    else
        # No WITH (FORCE) before PostgreSQL 13: close the sessions by hand.
        psql "${PSQL_FLAGS[@]}" -d "$url" -v prefix="$prefix" <<'SQL'
select format('alter database %I is_template false', datname)
  from pg_database where left(datname, length(:'prefix')) = :'prefix' and datistemplate \gexec
select format('alter database %I allow_connections false', datname)
  from pg_database where left(datname, length(:'prefix')) = :'prefix' \gexec
select count(pg_terminate_backend(pid)) from pg_stat_activity
 where left(datname, length(:'prefix')) = :'prefix' \g /dev/null
select format('drop database if exists %I', datname)
  from pg_database where left(datname, length(:'prefix')) = :'prefix' \gexec
SQL
    fi
}

# ---------------------------------------------------------------------------------------
# RabbitMQ

# rabbitmqctl_cmd ARGS...: rabbitmqctl, or the command in REDRESS_RABBITMQCTL (split on
# spaces) for users whose broker runs in a container.
rabbitmqctl_cmd() {
    local -a cmd
    read -r -a cmd <<<"${RABBITMQCTL:-rabbitmqctl}"
    if [ -z "$RABBITMQCTL" ] && [ "$(id -u)" -ne 0 ] && have sudo && sudo -n true 2>/dev/null; then
        # The Debian package's rabbitmqctl needs root (or the rabbitmq user) to read the
        # Erlang cookie.
        cmd=(sudo -n "${cmd[@]}")
    fi
    "${cmd[@]}" "$@"
}

# have_rabbitmqctl: true when the management CLI exists and can talk to the node.
have_rabbitmqctl() {
    local -a cmd
    read -r -a cmd <<<"${RABBITMQCTL:-rabbitmqctl}"
    have "${cmd[0]}" || return 1
    rabbitmqctl_cmd -q list_vhosts >/dev/null 2>&1
}

_rabbitmq_start_local() {
    local out
    if ! have rabbitmq-server; then
        die "RabbitMQ is not answering on port $1 and rabbitmq-server is not installed here.
    Start RabbitMQ yourself (for example: docker compose up -d rabbitmq), or set the AMQP URL to a running broker."
    fi
    say "Starting RabbitMQ (port $1 was closed)"
    if ! out=$(as_root rabbitmq-server -detached 2>&1); then
        printf '%s\n' "$out" >&2
        die "could not start RabbitMQ: run as root, or start it yourself: rabbitmq-server -detached"
    fi
}

# ensure_rabbitmq AMQP_URL: make sure the broker behind AMQP_URL accepts connections,
# starting a local rabbitmq-server if its port is closed. The AMQP listener opens late
# in the node's boot, so an open port means the node is ready for clients.
ensure_rabbitmq() {
    local url=$1 host port
    parse_url "$url"
    case $URL_SCHEME in
        amqp) port=${URL_PORT:-5672} ;;
        amqps) port=${URL_PORT:-5671} ;;
        *) die "AMQP URL must start with amqp:// or amqps://, not '$(redact_url "$url")'" ;;
    esac
    host=${URL_HOST:-127.0.0.1}
    if ! port_open "$host" "$port"; then
        if is_local_host "$host" && _may_start; then
            _rabbitmq_start_local "$port"
        else
            die "RabbitMQ is not answering on $host:$port. Start it, or set the URL to a running broker."
        fi
    fi
    wait_until "$(_wait_seconds)" "RabbitMQ on $host:$port" port_open "$host" "$port"
    note "RabbitMQ is up on $host:$port"
}

# http_ok URL: true when URL answers 2xx.
http_ok() {
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
}
