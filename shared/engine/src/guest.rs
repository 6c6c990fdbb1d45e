//! What a guest is, found without compiling it: a core WASI preview-1
//! command or a WASI preview-2 component (and which world it serves), with
//! every import checked against what the launcher provides.
//!
//! `sealsdk seal` decides the package's kind here, and refuses guests the
//! launcher could not run, with the reason; the launcher's linker checks
//! the same imports again, by type, when it instantiates.
use sealrun_format::package::AppKind;
use wasmparser::{Parser, Payload, Validator};

use crate::{EngineError, GUEST_FEATURES};

/// The import module of WASI preview-1 commands.
pub const WASI_P1: &str = "wasi_snapshot_preview1";

/// The WASI 0.2 interfaces a component may import: every interface of
/// `wasi:cli/imports` that wasmtime-wasi's preview-2 host adds to the
/// launcher's linker, and `wasi:http`'s types and outgoing handler
/// (wasmtime-wasi-http's; requests go only where the network grants
/// allow). The unstable ones it
/// leaves out unless asked (`wasi:clocks/timezone`, `wasi:cli/exit`'s
/// `exit-with-code` lives in `exit` and is gated per function) are not
/// listed. Sockets are linked but deny every address unless the user
/// grants it.
pub const WASI_P2_INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/ip-name-lookup",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
];

/// The WASI release line the launcher's host implements: imports of any
/// `0.2.x` are linked to it (WASI 0.2 releases only add, each addition
/// marked `@since`, and wasmtime links 0.2.x imports to its own 0.2).
pub const WASI_P2_LINE: &str = "0.2.";

/// The export that makes a component a `wasi:cli/command`.
const CLI_RUN: &str = "wasi:cli/run";
/// The export that makes a component a `wasi:http/proxy`.
const HTTP_INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// Most imports named in one refusal; a component with more is told the
/// count of the rest.
const MAX_NAMED_IMPORTS: usize = 8;

/// A guest that was looked at: its kind and what it imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// A core module or a component, and its world.
    pub kind: AppKind,
    /// What it imports: `module::name` for a module (one per function),
    /// the interface names for a component (`wasi:cli/stdout@0.2.4`), in
    /// the guest's order.
    pub imports: Vec<String>,
}

/// Why a guest cannot be sealed for the launcher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuestError {
    /// Not WebAssembly at all.
    #[error("it does not start with the WebAssembly magic bytes")]
    NotWasm,
    /// The binary does not validate with the features the launcher enables.
    #[error("{0}")]
    Invalid(#[source] wasmparser::BinaryReaderError),
    /// wasmtime's validation of a module failed.
    #[error("{0:#}")]
    InvalidModule(#[source] wasmtime::Error),
    /// The engine to validate with could not be made.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A module imports something other than WASI preview 1.
    #[error("it imports `{name}` from `{module}`, which the launcher does not provide (only {WASI_P1})")]
    ModuleImport {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
    },
    /// A module without `_start`.
    #[error("it exports no `_start` function; build it as a WASI command (a program with `main`)")]
    NoStart,
    /// A component imports what the launcher does not provide.
    #[error("{}", unsupported_imports(.names))]
    ComponentImports {
        /// The imports the launcher cannot satisfy, in the guest's order.
        names: Vec<String>,
    },
    /// A component that exports neither world's entry point.
    #[error(
        "it exports neither {CLI_RUN} (a command: build a program with `main` for wasm32-wasip2) nor {HTTP_INCOMING_HANDLER} (an HTTP service)"
    )]
    NoWorld,
    /// A component that exports both entry points.
    #[error(
        "it exports both {CLI_RUN} and {HTTP_INCOMING_HANDLER}; a package is either a command or an HTTP service, so build one component for each"
    )]
    TwoWorlds,
}

fn unsupported_imports(names: &[String]) -> String {
    let list = names.iter().take(MAX_NAMED_IMPORTS).map(String::as_str).collect::<Vec<_>>().join(", ");
    let more = match names.len().saturating_sub(MAX_NAMED_IMPORTS) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "it imports {list}{more}, which the launcher does not provide (it provides the WASI {WASI_P2_LINE}x \
         interfaces of wasi:cli/imports, listed in docs/format.md)"
    )
}

/// Looks at `bytes`: validates it as a module or component the launcher's
/// engine accepts (no compilation) and checks its imports and entry point.
pub fn inspect(bytes: &[u8]) -> Result<Inspected, GuestError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(GuestError::NotWasm);
    }
    if Parser::is_component(bytes) { inspect_component(bytes) } else { inspect_module(bytes) }
}

fn inspect_module(bytes: &[u8]) -> Result<Inspected, GuestError> {
    // wasmtime's own validation, on every core, with the engine's features.
    let engine = crate::host_engine()?;
    wasmtime::Module::validate(&engine, bytes).map_err(GuestError::InvalidModule)?;
    let mut imports = Vec::new();
    let mut has_start = false;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(GuestError::Invalid)? {
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    let import = import.map_err(GuestError::Invalid)?;
                    if import.module != WASI_P1 {
                        return Err(GuestError::ModuleImport {
                            module: import.module.to_owned(),
                            name: import.name.to_owned(),
                        });
                    }
                    imports.push(format!("{}::{}", import.module, import.name));
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    has_start |= export.map_err(GuestError::Invalid)?.name == "_start";
                }
            }
            _ => {}
        }
    }
    if !has_start {
        return Err(GuestError::NoStart);
    }
    Ok(Inspected { kind: AppKind::Console, imports })
}

/// The interface part of `name` (`wasi:cli/stdout` of
/// `wasi:cli/stdout@0.2.4`) if its version is on [`WASI_P2_LINE`].
fn interface_of(name: &str) -> Option<&str> {
    let (interface, version) = name.split_once('@')?;
    let patch = version.strip_prefix(WASI_P2_LINE)?;
    // A plain patch number: no pre-release or build suffix, no leading zero.
    let canonical =
        !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()) && (patch == "0" || !patch.starts_with('0'));
    canonical.then_some(interface)
}

fn inspect_component(bytes: &[u8]) -> Result<Inspected, GuestError> {
    Validator::new_with_features(GUEST_FEATURES).validate_all(bytes).map_err(GuestError::Invalid)?;
    // Only the outermost component's imports and exports are the guest's:
    // nested modules and components are its own business.
    let mut depth = 0usize;
    let mut imports = Vec::new();
    let (mut command, mut proxy) = (false, false);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(GuestError::Invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import.map_err(GuestError::Invalid)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let name = export.map_err(GuestError::Invalid)?.name.name;
                    command |= interface_of(name) == Some(CLI_RUN);
                    proxy |= interface_of(name) == Some(HTTP_INCOMING_HANDLER);
                }
            }
            _ => {}
        }
    }
    let kind = match (command, proxy) {
        (true, false) => AppKind::ComponentCommand,
        (false, true) => AppKind::ComponentHttpProxy,
        (true, true) => return Err(GuestError::TwoWorlds),
        (false, false) => return Err(GuestError::NoWorld),
    };
    let unsupported: Vec<String> = imports
        .iter()
        .filter(|name| !interface_of(name).is_some_and(|i| WASI_P2_INTERFACES.contains(&i)))
        .cloned()
        .collect();
    if !unsupported.is_empty() {
        return Err(GuestError::ComponentImports { names: unsupported });
    }
    Ok(Inspected { kind, imports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_0_2_versions_name_an_interface() {
        assert_eq!(interface_of("wasi:cli/stdout@0.2.4"), Some("wasi:cli/stdout"));
        assert_eq!(interface_of("wasi:cli/stdout@0.2.0"), Some("wasi:cli/stdout"));
        assert_eq!(interface_of("wasi:cli/stdout@0.2.12"), Some("wasi:cli/stdout"));
        for other in ["wasi:cli/stdout", "wasi:cli/stdout@0.3.0", "wasi:cli/stdout@0.2.", "wasi:cli/stdout@0.2.04"] {
            assert_eq!(interface_of(other), None, "{other}");
        }
        assert_eq!(interface_of("wasi:cli/stdout@0.2.1-rc"), None);
    }

    #[test]
    fn a_refusal_names_the_imports_and_counts_the_rest() {
        let names: Vec<String> = (0..10).map(|i| format!("acme:x/i{i}@1.0.0")).collect();
        let text = GuestError::ComponentImports { names }.to_string();
        assert!(text.starts_with("it imports acme:x/i0@1.0.0, acme:x/i1@1.0.0,"), "{text}");
        assert!(text.contains("acme:x/i7@1.0.0 and 2 more, which the launcher does not provide"), "{text}");
        assert!(!text.contains("i8"), "{text}");
    }

    #[test]
    fn the_format_doc_lists_every_interface() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/format.md")).unwrap();
        let doc = doc.replace(['\n', ' '], "");
        for interface in WASI_P2_INTERFACES {
            let (package, name) = interface.split_once('/').unwrap();
            let listed = doc.split(&format!("`{package}/`")).nth(1).unwrap_or("");
            let listed = listed.split(';').next().unwrap_or("");
            assert!(listed.contains(&format!("`{name}`")), "docs/format.md does not list {interface}");
        }
    }

    #[test]
    fn not_wasm_and_empty_components_are_refused() {
        assert!(matches!(inspect(b"hello"), Err(GuestError::NotWasm)));
        // The smallest valid component: header only, no exports.
        let empty = b"\0asm\x0d\0\x01\0";
        assert!(matches!(inspect(empty), Err(GuestError::NoWorld)), "{:?}", inspect(empty));
        // A component header with a section that does not parse.
        let broken = b"\0asm\x0d\0\x01\0\x0b\x05\x01";
        assert!(matches!(inspect(broken), Err(GuestError::Invalid(_))), "{:?}", inspect(broken));
    }
}
