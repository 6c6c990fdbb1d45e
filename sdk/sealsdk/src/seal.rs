//! Sealing a WebAssembly module or component into a package.
//!
//! The input is memory-mapped, validated as a guest the launcher can run
//! (by validation, not compilation), then encrypted chunk by chunk into a
//! temporary file next to the output that is renamed into place only when
//! complete: a failed seal never leaves a partial package behind, and a
//! 500 MB module needs one chunk of heap, not the module twice.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sealrun_engine::guest::{GuestError, Inspected};
use sealrun_format::package::{AppKind, Capability, Header, NativeInput, PackageSealer, PackageSpec};
use sealrun_format::{ContentKey, Release, VendorSigningKey};

use crate::keystore::Keystore;
use crate::{Result, SdkError, rng};

/// Inputs at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_LEN: u64 = 8 << 20;

/// What to seal.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Product id.
    pub product: String,
    /// Release.
    pub release: Release,
    /// Name shown to users (defaults to the product id).
    pub display_name: Option<String>,
    /// Capabilities the app asks for.
    pub capabilities: Vec<Capability>,
    /// Chunk size as a power of two.
    pub chunk_size_log2: u8,
    /// Show a progress bar on stderr for large inputs.
    pub progress: bool,
    /// Targets to ship precompiled native code for (e.g. `x86_64-linux`).
    pub precompile: Vec<String>,
    /// The app's icon for menus (PNG or SVG), carried unencrypted.
    pub icon: Option<Vec<u8>>,
}

/// What a seal produced.
#[derive(Debug)]
pub struct SealReport {
    /// The package written.
    pub output: PathBuf,
    /// Its header.
    pub header: Header,
    /// Size of the package in bytes.
    pub package_len: u64,
    /// Time spent encrypting and writing (validation excluded).
    pub encrypt_time: Duration,
    /// What the guest imports (see [`Inspected::imports`]); empty when the
    /// bytes were sealed without being looked at ([`seal_bytes`]).
    pub imports: Vec<String>,
}

/// Seals `input` into `output` with keys from `keystore`.
pub fn seal_file(keystore: &Keystore, input: &Path, output: &Path, opts: &SealOptions) -> Result<SealReport> {
    let signer = keystore.vendor_key()?;
    let file = File::open(input).map_err(SdkError::io("cannot open", input))?;
    let module = map(&file, input)?;
    let guest = validate_guest(&module).map_err(|source| SdkError::InvalidGuest { path: input.to_owned(), source })?;
    let key = keystore.content_key(&opts.product, opts.release)?;
    let report = seal_bytes(&module, guest.kind, &key, &signer, output, opts)?;
    Ok(SealReport { imports: guest.imports, ..report })
}

fn map(file: &File, path: &Path) -> Result<memmap2::Mmap> {
    // The map lives only for this seal. Changing
    // the input while it is sealed seals a mix of old and new bytes (still
    // signed as sealed, so nothing downstream is fooled, but seal a file
    // nobody is writing); truncating it raises SIGBUS and ends the process.
    sealrun_host::fs::map_read_only(file).map_err(SdkError::io("cannot read", path))
}

/// Seals guest bytes already in memory (or mapped), of the `kind`
/// [`validate_guest`] found, into `output`.
pub fn seal_bytes(
    module: &[u8],
    kind: AppKind,
    key: &ContentKey,
    signer: &VendorSigningKey,
    output: &Path,
    opts: &SealOptions,
) -> Result<SealReport> {
    // A core module has no sockets: a network request would be a promise
    // the launcher cannot keep.
    let network = opts
        .capabilities
        .iter()
        .find(|c| matches!(c, Capability::Connect(_) | Capability::Listen(_) | Capability::Dns | Capability::Udp));
    if let (false, Some(c)) = (kind.is_component(), network) {
        let field = match c {
            Capability::Connect(_) => "--request-connect",
            Capability::Listen(_) => "--request-listen",
            Capability::Dns => "--request-dns",
            _ => "--request-udp",
        };
        return Err(sealrun_format::Error::InvalidInput {
            field,
            problem: "a WASI preview-1 module has no network access; ask for it in a component (build for wasm32-wasip2)",
        }
        .into());
    }
    let native_code = precompile(module, kind, &opts.precompile, opts.progress)?;
    let native: Vec<NativeInput<'_>> =
        native_code.iter().map(|p| NativeInput { target: &p.target, runtime: p.runtime, code: &p.code }).collect();
    let spec = PackageSpec {
        product: opts.product.clone(),
        release: opts.release,
        display_name: opts.display_name.clone().unwrap_or_else(|| opts.product.clone()),
        kind,
        capabilities: opts.capabilities.clone(),
        chunk_size_log2: opts.chunk_size_log2,
        plaintext_len: module.len() as u64,
        icon: opts.icon.clone(),
    };
    let mut sealer = PackageSealer::with_native(spec, key, signer.public(), &native, &mut rng())?;
    let header = sealer.header().clone();
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".sealing-")
        .tempfile_in(dir)
        .map_err(SdkError::io("cannot create a file in", dir))?;
    let bar = progress_bar(opts.progress, module.len() as u64);
    let started = Instant::now();
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    let werr = SdkError::io("cannot write", output);
    let result = (|| -> std::io::Result<Result<()>> {
        w.write_all(header.as_bytes())?;
        let chunk = 1usize << opts.chunk_size_log2;
        let mut buf = Vec::with_capacity(chunk + 16);
        let mut pieces = module.chunks(chunk).peekable();
        if pieces.peek().is_none() {
            return Ok(Err(SdkError::InvalidGuest { path: output.to_owned(), source: GuestError::NotWasm }));
        }
        for piece in pieces {
            buf.clear();
            buf.extend_from_slice(piece);
            if let Err(e) = sealer.seal_chunk(&mut buf) {
                return Ok(Err(e.into()));
            }
            w.write_all(&buf)?;
            bar.inc(piece.len() as u64);
        }
        w.write_all(sealer.native_ciphertext())?;
        match sealer.finish(signer) {
            Ok(sig) => w.write_all(&sig)?,
            Err(e) => return Ok(Err(e.into())),
        }
        w.flush()?;
        Ok(Ok(()))
    })();
    bar.finish_and_clear();
    drop(w);
    match result {
        Err(e) => return Err(werr(e)),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => {}
    }
    tmp.as_file().sync_all().map_err(SdkError::io("cannot write", output))?;
    tmp.persist(output).map_err(|e| SdkError::io("cannot write", output)(e.error))?;
    let encrypt_time = started.elapsed();
    Ok(SealReport {
        output: output.to_owned(),
        package_len: header.package_len(),
        header,
        encrypt_time,
        imports: Vec::new(),
    })
}

/// Native code compiled for one target.
struct Precompiled {
    target: String,
    runtime: [u8; 32],
    code: Vec<u8>,
}

/// Compiles `module` (a core module or a component, as `kind` says) ahead
/// of time for each target with the engine the launcher loads it with
/// (`sealrun_engine`), so the launcher can check it was compiled by a
/// runtime exactly like its own.
fn precompile(module: &[u8], kind: AppKind, targets: &[String], progress: bool) -> Result<Vec<Precompiled>> {
    let mut out: Vec<Precompiled> = Vec::new();
    for target in targets {
        if out.iter().any(|p| &p.target == target) {
            continue;
        }
        let fail = |reason: String| SdkError::Precompile { target: target.clone(), reason };
        let engine = sealrun_engine::engine_for_target(target, kind).map_err(|e| fail(e.to_string()))?;
        let bar = if progress { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
        bar.set_message(format!("precompiling for {target} ({} bytes of wasm)", module.len()));
        bar.enable_steady_tick(Duration::from_millis(120));
        let code =
            if kind.is_component() { engine.precompile_component(module) } else { engine.precompile_module(module) };
        let code = code.map_err(|e| fail(format!("{e:#}")));
        bar.finish_and_clear();
        out.push(Precompiled {
            target: target.clone(),
            runtime: sealrun_engine::runtime_fingerprint(&engine),
            code: code?,
        });
    }
    Ok(out)
}

fn progress_bar(wanted: bool, len: u64) -> ProgressBar {
    if !wanted || len < PROGRESS_MIN_LEN {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("sealing {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)")
            .expect("template is valid"),
    );
    bar
}

/// Checks that `bytes` is a guest the launcher can run: a WASI preview-1
/// command or a WASI preview-2 component (command or HTTP service), valid
/// under the launcher's engine features and importing only what the
/// launcher provides (see [`sealrun_engine::guest::inspect`]); what it is
/// and what it imports.
pub fn validate_guest(bytes: &[u8]) -> std::result::Result<Inspected, GuestError> {
    sealrun_engine::guest::inspect(bytes)
}
