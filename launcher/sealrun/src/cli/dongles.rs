//! `sealrun dongle list`: attached tokens and what they license.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::TokenArgs;
use crate::LaunchError;
use crate::license::{device, dongle, store};

#[derive(Subcommand)]
pub(super) enum DongleCommand {
    /// List attached tokens and what they license
    List {
        /// Also log in (once per token) to show the terms of the licenses sealed to each
        #[arg(long)]
        terms: bool,
        #[command(flatten)]
        token: TokenArgs,
    },
}

pub(super) fn execute(c: DongleCommand) -> Result<ExitCode, LaunchError> {
    match c {
        DongleCommand::List { terms, token } => list(&token.options(), terms),
    }
}

fn list(opts: &dongle::Options, terms: bool) -> Result<ExitCode, LaunchError> {
    let (tokens, problems) = dongle::list(opts)?;
    for p in &problems {
        eprintln!("sealrun: warning: {p}");
    }
    let device = device::load_or_create()?;
    let sealed: Vec<(PathBuf, sealrun_format::dongle::SealedLicense)> = std::fs::read_dir(store::dongle_licenses_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let bytes = store::read_license_file(&p).ok()?;
            sealrun_format::dongle::SealedLicense::parse(&bytes).ok().map(|s| (p, s))
        })
        .collect();
    if tokens.is_empty() {
        println!("no token is attached");
    }
    let mut tried: Vec<String> = Vec::new();
    for t in &tokens {
        let v = &t.token;
        println!("token \"{}\" (serial {}, {}) via {}", v.label, v.serial, v.model, t.module.display());
        match &v.record {
            None => println!("  not a Sealrun dongle"),
            Some(Err(e)) => println!("  DAMAGED attach record: {e}"),
            Some(Ok(r)) => {
                let here = if r.device == device.code { "this device" } else { "ANOTHER device" };
                println!(
                    "  dongle {}, vendor {}, permitted on {here} ({})",
                    r.dongle,
                    r.vendor_key.short_id(),
                    r.device
                );
                let mine: Vec<_> = sealed.iter().filter(|(_, s)| s.dongle == r.dongle).collect();
                if mine.is_empty() {
                    println!("  no installed license is sealed to it");
                    continue;
                }
                // Their terms need the token: only with --terms, one login
                // per token (the same token may show through two modules),
                // and a refusal is reported, never retried.
                let opened = if terms && !tried.contains(&v.serial) {
                    tried.push(v.serial.clone());
                    let envelopes: Vec<_> = mine.iter().map(|(_, s)| s).collect();
                    match opts.pin(&v.label).and_then(|pin| dongle::open_licenses(t, &pin, &envelopes)) {
                        Ok(o) => Some(o),
                        Err(e) => {
                            println!("  cannot show the terms: {e}");
                            None
                        }
                    }
                } else {
                    None
                };
                for (i, (path, _)) in mine.iter().enumerate() {
                    match opened.as_ref().and_then(|o| o.get(i)) {
                        Some(Ok(l)) => println!(
                            "  license {}: {} {} for {}, {}, expires {}",
                            path.display(),
                            l.terms.product,
                            l.terms.releases,
                            l.terms.licensee,
                            l.terms.binding.describe(),
                            l.terms.expires.map(sealrun_host::time::rfc3339).unwrap_or_else(|| "never".into())
                        ),
                        Some(Err(e)) => println!("  license {}: DAMAGED: {e}", path.display()),
                        None => {
                            println!("  license {} (`sealrun dongle list --terms` shows its terms)", path.display())
                        }
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
