//! Human- and machine-readable descriptions of packages and licenses.
//! Nothing secret is ever shown: key ids are one-way, wrapped keys are
//! summarised by count.
use std::fmt::Write as _;

use sealrun_format::license::{Binding, Issuer, License, MeterPeriod};
use sealrun_format::package::{AppKind, Capability, Header, Manifest};
use serde_json::{Value, json};

use crate::dates;

/// A parsed artifact of either kind.
pub enum Artifact {
    /// A package header (the encrypted body is not needed to describe it).
    Package(Box<Header>),
    /// A license.
    License(Box<License>),
    /// A license sealed to a dongle (its terms need the dongle key).
    Sealed(Box<sealrun_format::dongle::SealedLicense>),
}

fn capability_text(c: &Capability) -> String {
    match c {
        Capability::Dir { writable: false, guest } => format!("directory {guest} (read-only)"),
        Capability::Dir { writable: true, guest } => format!("directory {guest} (read-write)"),
        Capability::Env(name) => format!("environment variable {name}"),
        Capability::Connect(to) => format!("network: connect to {to}"),
        Capability::Listen(on) => format!("network: listen on {on}"),
        Capability::Dns => "network: look up host names (DNS)".to_owned(),
        Capability::Udp => "network: UDP".to_owned(),
    }
}

fn kind_text(k: AppKind) -> &'static str {
    match k {
        AppKind::Console => "console",
        AppKind::ComponentCommand => "component (wasi:cli/command)",
        AppKind::ComponentHttpProxy => "component (wasi:http/proxy)",
    }
}

/// Describes a package for people.
pub fn package_text(h: &Header) -> String {
    let m: &Manifest = &h.manifest;
    let mut s = String::new();
    let _ = writeln!(s, "Sealrun package (format v1)");
    let _ = writeln!(s, "  product:       {}", m.product);
    let _ = writeln!(s, "  release:       {}", m.release);
    let _ = writeln!(s, "  name:          {}", m.display_name);
    let _ = writeln!(s, "  kind:          {}", kind_text(m.kind));
    let _ = writeln!(s, "  vendor key:    {} (id {})", m.vendor_key, m.vendor_key.short_id());
    let _ = writeln!(s, "  cipher suite:  {} (AES-256-GCM-SIV STREAM, Ed25519)", m.cipher_suite);
    let _ = writeln!(s, "  module size:   {} bytes", m.plaintext_len);
    let layout = m.layout();
    let _ = writeln!(s, "  chunks:        {} x {} KiB", layout.chunk_count(), layout.chunk_size() / 1024);
    let _ = writeln!(s, "  content key:   id {}", m.key_id);
    let _ = writeln!(s, "  package size:  {} bytes", h.package_len());
    if m.capabilities.is_empty() {
        let _ = writeln!(s, "  requests:      nothing (no files, no environment)");
    } else {
        for (i, c) in m.capabilities.iter().enumerate() {
            let label = if i == 0 { "  requests:     " } else { "                " };
            let _ = writeln!(s, "{label} {}", capability_text(c));
        }
    }
    // Only shown when present, so packages without them read as before.
    if let Some(icon) = &m.icon {
        let _ = writeln!(s, "  icon:          {}, {} bytes (for menus, not encrypted)", icon_kind(icon), icon.len());
    }
    for (i, n) in m.native.iter().enumerate() {
        let label = if i == 0 { "  native code:  " } else { "                " };
        let _ = writeln!(s, "{label} {} ({} bytes, runs only where users trust this vendor key)", n.target, n.len);
    }
    s
}

/// "PNG" or "SVG", by the icon's first bytes (the format checked which).
fn icon_kind(icon: &[u8]) -> &'static str {
    if icon.starts_with(b"\x89PNG") { "PNG" } else { "SVG" }
}

/// Describes a package as JSON.
pub fn package_json(h: &Header) -> Value {
    let m = &h.manifest;
    json!({
        "type": "package",
        "format_version": 1,
        "product": m.product,
        "release": m.release.to_string(),
        "display_name": m.display_name,
        "kind": kind_text(m.kind),
        "vendor_key": m.vendor_key.to_string(),
        "cipher_suite": m.cipher_suite,
        "module_len": m.plaintext_len,
        "chunk_size": m.layout().chunk_size(),
        "chunk_count": m.layout().chunk_count(),
        "key_id": m.key_id.to_string(),
        "package_len": h.package_len(),
        "capabilities": m.capabilities.iter().map(capability_text).collect::<Vec<_>>(),
        "native_code": m.native.iter().map(|n| json!({"target": n.target, "len": n.len})).collect::<Vec<_>>(),
        "icon": m.icon.as_ref().map(|i| json!({"type": icon_kind(i), "len": i.len()})),
    })
}

/// Describes a license for people.
pub fn license_text(l: &License) -> String {
    let t = &l.terms;
    let mut s = String::new();
    let _ = writeln!(s, "Sealrun license (format v{})", t.format_version());
    let _ = writeln!(s, "  license id:    {}", t.license_id_hex());
    let _ = writeln!(s, "  product:       {}", t.product);
    let _ = writeln!(s, "  releases:      {}", t.releases);
    let _ = writeln!(s, "  licensee:      {}", t.licensee);
    let _ = writeln!(s, "  issued:        {}", dates::format(t.issued_at));
    let _ = writeln!(s, "  valid from:    {}", dates::format(t.not_before));
    match t.expires {
        Some(e) => {
            let _ = writeln!(s, "  expires:       {}", dates::describe_expiry(e));
        }
        None => {
            let _ = writeln!(s, "  expires:       never");
        }
    }
    let features: Vec<String> = t
        .features
        .iter()
        .map(|f| {
            let mut d = f.name.clone();
            if let Some(v) = &f.value {
                d = format!("{d}={v}");
            }
            if let Some(e) = f.expires {
                d = format!("{d} ({})", dates::describe_end(e));
            }
            d
        })
        .collect();
    let features = if features.is_empty() { "none".to_owned() } else { features.join(", ") };
    let _ = writeln!(s, "  features:      {features}");
    if !t.meters.is_empty() {
        let meters: Vec<String> = t
            .meters
            .iter()
            .map(|m| match m.period {
                MeterPeriod::Life => format!("{} {} (for the license's life)", m.name, m.limit),
                MeterPeriod::Month => format!("{} {} per month (UTC)", m.name, m.limit),
            })
            .collect();
        let _ = writeln!(s, "  meters:        {}", meters.join(", "));
    }
    let _ = writeln!(s, "  bound to:      {}", t.binding.describe());
    let _ = writeln!(s, "  vendor key:    {} (id {})", t.vendor_key, t.vendor_key.short_id());
    match l.issuer {
        Issuer::Vendor => {
            let _ = writeln!(s, "  signed by:     the vendor key");
        }
        Issuer::Certified(c) => {
            let _ = writeln!(
                s,
                "  signed by:     issuing key {} (certified until {})",
                c.issuer_key.short_id(),
                dates::format(c.not_after)
            );
        }
    }
    let releases: Vec<String> = l.keys.iter().map(|k| format!("{} (key {})", k.release, k.key_id)).collect();
    let _ = writeln!(s, "  content keys:  {} wrapped: {}", l.keys.len(), releases.join(", "));
    s
}

/// Describes a license as JSON.
pub fn license_json(l: &License) -> Value {
    let t = &l.terms;
    let binding = match t.binding {
        Binding::Device(d) => json!({ "device": d.to_string() }),
        Binding::Dongle { dongle, count } => json!({ "dongle": dongle.to_string(), "count": count }),
        Binding::Floating { holder, seats, unit } => {
            let held_by = match holder {
                sealrun_format::license::Holder::Device(d) => json!({ "device": d.to_string() }),
                sealrun_format::license::Holder::Dongle(id) => json!({ "dongle": id.to_string() }),
            };
            json!({ "floating": { "seats": seats, "per": unit.as_str(), "held_by": held_by } })
        }
    };
    json!({
        "type": "license",
        "format_version": t.format_version(),
        "license_id": t.license_id_hex(),
        "product": t.product,
        "releases": { "min": t.releases.min.to_string(), "max": t.releases.max.map(|m| m.to_string()) },
        "licensee": t.licensee,
        "issued_at": dates::format(t.issued_at),
        "not_before": dates::format(t.not_before),
        "expires": t.expires.map(dates::format),
        "features": t.feature_names(),
        "feature_terms": t.features.iter().map(|f| json!({
            "name": f.name,
            "value": f.value,
            "expires": f.expires.map(dates::format),
        })).collect::<Vec<_>>(),
        "meters": t.meters.iter().map(|m| json!({
            "name": m.name,
            "limit": m.limit,
            "period": m.period.as_str(),
        })).collect::<Vec<_>>(),
        "binding": binding,
        "vendor_key": t.vendor_key.to_string(),
        "issuer": match l.issuer { Issuer::Vendor => json!("vendor"), Issuer::Certified(c) => json!({"issuing_key": c.issuer_key.to_string(), "not_after": dates::format(c.not_after)}) },
        "keys": l.keys.iter().map(|k| json!({"release": k.release.to_string(), "key_id": k.key_id.to_string()})).collect::<Vec<_>>(),
    })
}

/// Opens a sealed license with the keystore's copy of its dongle key, for
/// the vendor's eyes: the license inside, or why it cannot be read.
pub fn open_sealed(
    sealed: &sealrun_format::dongle::SealedLicense,
    keystore: &crate::keystore::Keystore,
) -> crate::Result<License> {
    let key = keystore.dongle_key(&sealed.dongle)?;
    let plain = key.decrypt(&sealed.decrypt_request())?;
    Ok(sealed.open(&plain)?)
}

/// Parses `bytes` as whichever artifact its magic says; `None` if it is
/// neither.
pub fn parse_any(bytes: &[u8]) -> Option<Result<Artifact, sealrun_format::Error>> {
    if bytes.starts_with(&sealrun_format::license::LICENSE_MAGIC) {
        return Some(License::parse(bytes).map(|l| Artifact::License(Box::new(l))));
    }
    if bytes.starts_with(&sealrun_format::dongle::SEALED_LICENSE_MAGIC) {
        return Some(sealrun_format::dongle::SealedLicense::parse(bytes).map(|s| Artifact::Sealed(Box::new(s))));
    }
    if bytes.starts_with(&sealrun_format::package::PACKAGE_MAGIC) {
        // Inspecting needs the header only; `verify` checks the whole file.
        return Some(Header::parse_prefix(bytes).map(|h| Artifact::Package(Box::new(h))));
    }
    None
}
