# Shared helpers for scripts/test, scripts/demo and scripts/bench (sourced).

# The wasmtime version the launcher links (kept in sync with Cargo.lock by
# a test in launcher/sealrun/src/doctor.rs).
WASMTIME_VERSION=48.0.8

step() { printf '\n==> %s\n' "$*" >&2; }

# rustup's cargo, even when the caller's PATH lacks ~/.cargo/bin.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# Installs the wasmtime CLI of the launcher's version with cargo if missing.
ensure_wasmtime_cli() {
    export PATH="$HOME/.cargo/bin:$PATH"
    if wasmtime --version 2>/dev/null | grep -q "wasmtime $WASMTIME_VERSION"; then
        return 0
    fi
    step "installing the wasmtime CLI $WASMTIME_VERSION (once; takes several minutes)"
    cargo install --locked --quiet wasmtime-cli --version "$WASMTIME_VERSION"
}
