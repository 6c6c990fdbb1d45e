# Shared helpers for scripts/test, scripts/demo and scripts/bench (sourced).

# The wasmtime version the launcher links (kept in sync with Cargo.lock by
# a test in launcher/sealrun/src/doctor.rs).
WASMTIME_VERSION=48.0.8

# Each step line carries the time since the script started, so a log shows
# what every stage (installs included) took.
# The start is exported, so scripts that call others count from the first.
export SEALRUN_SCRIPT_START="${SEALRUN_SCRIPT_START:-$(date +%s)}"
step() {
    local t=$(($(date +%s) - SEALRUN_SCRIPT_START))
    printf '\n==> [%dm%02ds] %s\n' $((t / 60)) $((t % 60)) "$*" >&2
}

# Installs Debian packages (with sudo unless root).
apt_install() {
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# rustup's cargo, even when the caller's PATH lacks ~/.cargo/bin.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# Installs CRATE at VERSION with cargo unless `COMMAND... --version`
# already reports "NAME VERSION": ensure_cargo_install CRATE VERSION NAME COMMAND...
ensure_cargo_install() {
    local crate="$1" version="$2" name="$3"
    shift 3
    export PATH="$HOME/.cargo/bin:$PATH"
    if "$@" --version 2>/dev/null | grep -q "$name $version"; then
        return 0
    fi
    step "installing $crate $version with cargo (once; this takes minutes)"
    cargo install --locked --quiet "$crate" --version "$version"
}

# The wasmtime CLI of the launcher's version.
ensure_wasmtime_cli() {
    ensure_cargo_install wasmtime-cli "$WASMTIME_VERSION" wasmtime wasmtime
}

# cargo-deny, for scripts/supply-chain (a fixed version: its config format
# and checks change between releases).
CARGO_DENY_VERSION=0.20.2
ensure_cargo_deny() {
    ensure_cargo_install cargo-deny "$CARGO_DENY_VERSION" cargo-deny cargo deny
}

# cargo-fuzz and a nightly toolchain, for scripts/fuzz.
CARGO_FUZZ_VERSION=0.13.2
ensure_cargo_fuzz() {
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        step "installing the nightly toolchain (for cargo-fuzz)"
        rustup toolchain install nightly --profile minimal >/dev/null
    fi
    ensure_cargo_install cargo-fuzz "$CARGO_FUZZ_VERSION" cargo-fuzz cargo fuzz
}

# gdb's gcore for the core-dump test, which needs root to attach to the
# not-dumpable launcher; as root the test is required, not skippable.
ensure_gdb() {
    if ! command -v gcore >/dev/null; then
        step "installing gdb (Debian package gdb)"
        apt_install gdb
    fi
    if [ "$(id -u)" = 0 ]; then
        export SEALRUN_REQUIRE_GCORE=1
    fi
}

# The desktop tests run in a private X server (Xvfb) with the desktop's own
# tools; the packaging tests build, lint and install the .deb packages.
ensure_desktop_tools() {
    local missing=()
    local tool package
    for pair in Xvfb:xvfb xdotool:xdotool zenity:zenity xdg-mime:xdg-utils \
        update-mime-database:shared-mime-info update-desktop-database:desktop-file-utils \
        gio:libglib2.0-bin import:imagemagick xterm:xterm lintian:lintian \
        dpkg-shlibdeps:dpkg-dev strip:binutils adduser:adduser help2man:help2man; do
        tool="${pair%%:*}"
        package="${pair#*:}"
        command -v "$tool" >/dev/null || missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        step "installing the desktop and packaging tools (Debian packages ${missing[*]})"
        apt_install "${missing[@]}"
    fi
    export SEALRUN_REQUIRE_DESKTOP=1
    if [ "$(id -u)" = 0 ]; then
        export SEALRUN_REQUIRE_PACKAGING=1
    fi
}

# The toolchain pinned in rust-toolchain.toml; rustup fetches it on first
# use, but asking up front gives one clear step (and error) for it.
ensure_toolchain() {
    if command -v rustup >/dev/null 2>&1; then
        (cd "$root" && rustup toolchain install >/dev/null)
    fi
}

# Starts a throwaway PostgreSQL server for the tests (installing Debian's
# postgresql package if missing) and exports SEALRUN_TEST_POSTGRES. It runs
# from a temporary directory on a free port and is stopped on exit.
# SoftHSM2 (software PKCS#11 tokens) for the hardware-key tests, and OpenSC
# for its pkcs11-spy (which counts the launcher's PIN attempts). The tests
# fail instead of skipping when SEALRUN_REQUIRE_SOFTHSM is set.
ensure_softhsm() {
    if ! command -v softhsm2-util >/dev/null || [ ! -e /usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so ]; then
        step "installing SoftHSM2 and OpenSC (Debian packages softhsm2, opensc)"
        apt_install softhsm2 opensc
    fi
    export SEALRUN_REQUIRE_SOFTHSM=1
}

start_test_postgres() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        step "installing PostgreSQL (Debian package postgresql)"
        apt_install postgresql
        bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    fi
    PG_DIR="$(mktemp -d /tmp/sealrun-pg.XXXXXX)"
    local port
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # PostgreSQL refuses to run as root: use its own user then.
    local as=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >/dev/null
    # Tests run without fsync (faster, and a test never survives a power
    # cut); the benchmark sets PG_FSYNC=on to measure what a real server does.
    "${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=${PG_FSYNC:-off} -c max_connections=300" start >/dev/null
    export SEALRUN_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
    export SEALRUN_REQUIRE_POSTGRES=1
    PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate stop)
    trap 'stop_test_postgres' EXIT
    step "PostgreSQL for the tests on port $port"
}

stop_test_postgres() {
    if [ -n "${PG_DIR:-}" ]; then
        "${PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
