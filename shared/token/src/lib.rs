//! PKCS#11 tokens as Sealrun dongles, for both sides: the vendor
//! provisions a token (a sensitive, non-extractable AES key and a signed
//! attach record), the launcher and the site license manager find it, check
//! its record, log in once with the PIN and have it decrypt. The dongle key
//! never leaves the token.
//!
//! Each use loads the PKCS#11 module afresh and finalizes it afterwards, so a
//! token that was pulled and plugged back in is seen as it is now, with no
//! stale session, whatever the module caches.
//!
//! Errors name the problem only; what the user should do next depends on
//! the program (a vendor at `sealsdk`, an end user at `sealrun`), so each
//! CLI says it.
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sealrun_format::dongle::{DongleId, DongleRecord, TAG_LEN, TokenDecrypt};
use sealrun_format::text;
use zeroize::Zeroizing;

pub use cryptoki;

mod error;
pub use error::{PinProblem, TokenError};

/// Label of the attach record (a `CKO_DATA` object, readable without login).
pub const RECORD_LABEL: &str = "sealrun-dongle-record";
/// Label of the dongle key (a sensitive, non-extractable AES key).
pub const KEY_LABEL: &str = "sealrun-dongle-key";
/// `CKA_APPLICATION` of the record.
pub const APPLICATION: &str = "sealrun";
/// Longest PIN read from a file or the environment: PKCS#11 PINs are short;
/// this stops a wrong file from being sent to the token.
pub const MAX_PIN_LEN: usize = 256;

/// Where token drivers install their PKCS#11 modules, searched in order when
/// none is configured: OpenSC (most smart cards and USB tokens), SoftHSM2,
/// YubiKey's ykcs11, SafeNet/Thales eToken, on Debian/Ubuntu, Fedora and macOS.
pub const KNOWN_MODULES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib64/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/libykcs11.so",
    "/usr/lib64/libykcs11.so",
    "/usr/lib/libeToken.so",
    "/usr/lib/libeTPkcs11.so",
    "/Library/OpenSC/lib/opensc-pkcs11.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// The modules to try when none is named: every [`KNOWN_MODULES`] entry
/// present, each library once (several paths are often links to one
/// library, and loading it twice would initialise it twice).
pub fn installed_modules() -> Vec<PathBuf> {
    let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new();
    for p in KNOWN_MODULES.iter().map(Path::new).filter(|p| p.is_file()) {
        let real = p.canonicalize().unwrap_or_else(|_| p.to_owned());
        if !seen.iter().any(|(r, _)| r == &real) {
            seen.push((real, p.to_owned()));
        }
    }
    seen.into_iter().map(|(_, p)| p).collect()
}

/// Largest PIN file read: the PIN is its first line, at most
/// [`MAX_PIN_LEN`] bytes; a name from a config file must not make the
/// launcher, the daemon or `sealsdk` read `/dev/zero` forever.
const MAX_PIN_FILE_LEN: u64 = 4096;

/// A PIN file's text, if it is a regular file of at most
/// [`MAX_PIN_FILE_LEN`] bytes of UTF-8.
pub fn read_pin_file(path: &Path) -> Option<Zeroizing<String>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_PIN_FILE_LEN {
        return None;
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_PIN_FILE_LEN).read_to_string(&mut text).ok()?;
    Some(text)
}

/// A PIN taken from `source` (a file's path, a variable's name, "the
/// prompt"), if it is 1 to [`MAX_PIN_LEN`] bytes.
pub fn checked_pin(p: Zeroizing<String>, source: &str) -> Result<AuthPin, TokenError> {
    if p.is_empty() || p.len() > MAX_PIN_LEN {
        return Err(TokenError::Pin(PinProblem::Unreadable(source.into())));
    }
    Ok(AuthPin::new(p.as_str().into()))
}

/// A loaded PKCS#11 module; finalized when dropped.
pub struct Library {
    ctx: Pkcs11,
    path: PathBuf,
}

/// A token as seen without logging in.
#[derive(Debug, Clone)]
pub struct TokenView {
    /// The slot it sits in.
    pub slot: Slot,
    /// Its label.
    pub label: String,
    /// Its serial number.
    pub serial: String,
    /// Manufacturer and model.
    pub model: String,
    /// Its attach record: none (not a Sealrun dongle), or parsed (not yet
    /// verified), or why it does not parse.
    pub record: Option<Result<DongleRecord, sealrun_format::Error>>,
}

fn failed(action: &'static str) -> impl Fn(CkError) -> TokenError {
    move |source| TokenError::Failed { action, source }
}

impl Library {
    /// Loads and initialises a module.
    pub fn open(path: &Path) -> Result<Library, TokenError> {
        let unusable = |source: CkError| TokenError::Module { module: path.to_owned(), source };
        let ctx = Pkcs11::new(path).map_err(unusable)?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).map_err(unusable)?;
        Ok(Library { ctx, path: path.to_owned() })
    }

    /// The module's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token present, with its attach record if it has one.
    pub fn tokens(&self) -> Result<Vec<TokenView>, TokenError> {
        let slots = self.ctx.get_slots_with_token().map_err(failed("cannot list the token slots"))?;
        let mut out = Vec::new();
        for slot in slots {
            let Ok(info) = self.ctx.get_token_info(slot) else { continue };
            // Blank tokens (SoftHSM2 always offers one) hold nothing to show.
            if !info.token_initialized() {
                continue;
            }
            let record = self.read_record(slot).ok().flatten().map(|bytes| DongleRecord::parse(&bytes));
            // What a token says of itself is anyone's text (a label of
            // `ESC]0;…` retitled the terminal): escaped once, here, for
            // every list, prompt and message that shows it.
            let shown = |s: &str| sealrun_format::text::shown(s.trim()).into_owned();
            out.push(TokenView {
                slot,
                label: shown(info.label()),
                serial: shown(info.serial_number()),
                model: shown(&format!("{} {}", info.manufacturer_id().trim(), info.model().trim())),
                record,
            });
        }
        Ok(out)
    }

    fn read_record(&self, slot: Slot) -> Result<Option<Vec<u8>>, CkError> {
        let session = self.ctx.open_ro_session(slot)?;
        let found = session.find_objects(&record_template())?;
        let Some(&object) = found.first() else { return Ok(None) };
        value_of(&session, object)
    }

    /// The token holding `dongle`, if attached.
    pub fn find(&self, dongle: &DongleId) -> Result<Option<(TokenView, DongleRecord)>, TokenError> {
        for t in self.tokens()? {
            if let Some(Ok(r)) = &t.record
                && &r.dongle == dongle
            {
                let r = r.clone();
                return Ok(Some((t, r)));
            }
        }
        Ok(None)
    }

    /// Logs in to the token in `slot` as its user, once: a wrong PIN is
    /// reported, never retried, and a locked PIN is reported before trying.
    pub fn login(&self, slot: Slot, pin: &AuthPin) -> Result<Session, TokenError> {
        self.login_as(slot, pin, false)
    }

    fn login_as(&self, slot: Slot, pin: &AuthPin, read_write: bool) -> Result<Session, TokenError> {
        let info = self.ctx.get_token_info(slot).map_err(failed("cannot read the token"))?;
        if info.user_pin_locked() {
            return Err(TokenError::Pin(PinProblem::Locked));
        }
        let session = if read_write { self.ctx.open_rw_session(slot) } else { self.ctx.open_ro_session(slot) }
            .map_err(failed("cannot open a session with the token"))?;
        match session.login(UserType::User, Some(pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                let after = self.ctx.get_token_info(slot).ok();
                Err(TokenError::Pin(PinProblem::Wrong {
                    locked: after.as_ref().is_some_and(|i| i.user_pin_locked()),
                    final_try: after.as_ref().is_some_and(|i| i.user_pin_final_try()),
                }))
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(TokenError::Pin(PinProblem::Locked)),
            Err(e) => Err(failed("cannot log in to the token")(e)),
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // cryptoki does not finalize by itself; without it the next load of
        // the same module in this process would find it still initialised.
        let _ = self.ctx.clone().finalize();
    }
}

fn record_template() -> Vec<Attribute> {
    vec![Attribute::Class(ObjectClass::DATA), Attribute::Label(RECORD_LABEL.as_bytes().to_vec())]
}

fn value_of(session: &Session, object: ObjectHandle) -> Result<Option<Vec<u8>>, CkError> {
    let attrs = session.get_attributes(object, &[AttributeType::Value])?;
    Ok(attrs.into_iter().find_map(|a| if let Attribute::Value(v) = a { Some(v) } else { None }))
}

/// Has the token behind `session` decrypt `request` with the dongle key.
/// A refusal of the input itself is the one coarse [`DecryptFailed::Refused`]
/// (damaged, or sealed to another dongle); a token that stops answering is
/// [`DecryptFailed::Unavailable`].
pub fn decrypt(
    session: &Session,
    dongle: &DongleId,
    request: &TokenDecrypt,
) -> Result<Zeroizing<Vec<u8>>, DecryptFailed> {
    let template =
        [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::KeyType(KeyType::AES), Attribute::Id(dongle.0.to_vec())];
    let found = session.find_objects(&template).map_err(|_| DecryptFailed::Unavailable)?;
    // No key under the dongle's id: this token is not that dongle.
    let key = found.first().copied().ok_or(DecryptFailed::Refused)?;
    let mut iv = request.nonce;
    let tag_bits = cryptoki::types::Ulong::try_from(TAG_LEN * 8).map_err(|_| DecryptFailed::Refused)?;
    let params = GcmParams::new(&mut iv, &request.aad, tag_bits).map_err(|_| DecryptFailed::Refused)?;
    session.decrypt(&Mechanism::AesGcm(params), key, &request.ciphertext).map(Zeroizing::new).map_err(|_| {
        // Tokens report a failed tag with different codes (SoftHSM2: a
        // general error); what tells a refusal from a pulled token is
        // whether the session still answers.
        match session.get_session_info() {
            Ok(_) => DecryptFailed::Refused,
            Err(_) => DecryptFailed::Unavailable,
        }
    })
}

/// Why the token did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecryptFailed {
    /// The input does not authenticate under this token's key (damaged, or
    /// sealed to another dongle), or the token has no such key.
    Refused,
    /// The token stopped answering (pulled out mid-operation, a reader error).
    Unavailable,
}

/// What provisioning writes onto a token.
pub struct Provision<'a> {
    /// The new dongle's id (the key's `CKA_ID`).
    pub dongle: DongleId,
    /// The dongle key, imported as sensitive and non-extractable.
    pub key: &'a sealrun_format::dongle::DongleKey,
    /// The signed attach record.
    pub record: &'a [u8],
    /// Replace a Sealrun dongle key and record already on the token.
    pub replace: bool,
}

/// Provisioning refused because the token already is a dongle.
pub const ALREADY_PROVISIONED: &str = "the token already holds a Sealrun dongle";

/// Writes the dongle key and the attach record onto the token in `slot`.
pub fn provision(module: &Path, slot_index: usize, pin: &AuthPin, p: &Provision<'_>) -> Result<TokenView, TokenError> {
    let lib = Library::open(module)?;
    let slots = lib.ctx.get_slots_with_token().map_err(failed("cannot list the token slots"))?;
    let slot = *slots.get(slot_index).ok_or_else(|| TokenError::NoSuchSlot {
        module: module.to_owned(),
        slot: slot_index,
        count: slots.len(),
    })?;
    let info = lib.ctx.get_token_info(slot).map_err(failed("cannot read the token"))?;
    let session = lib.login_as(slot, pin, true)?;
    let old_keys = session
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Label(KEY_LABEL.as_bytes().to_vec())])
        .map_err(failed("cannot search the token"))?;
    let old_records = session.find_objects(&record_template()).map_err(failed("cannot search the token"))?;
    let provisioned = !old_keys.is_empty() || !old_records.is_empty();
    if provisioned && !p.replace {
        return Err(TokenError::AlreadyProvisioned { label: text::shown(info.label().trim()).into_owned() });
    }
    let key_template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        // Nor may the token copy it into a new object (C_CopyObject) whose
        // attributes could then differ (PKCS#11 2.40, CKA_COPYABLE).
        Attribute::Copyable(false),
        Attribute::Decrypt(true),
        // Nothing but decryption: the token cannot be used to make licenses
        // or to wrap the key out.
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
        // GCM only: with CTR or ECB a "decryption" is an encryption, which
        // would let a PIN holder forge what only the vendor may seal.
        Attribute::AllowedMechanisms(vec![cryptoki::mechanism::MechanismType::AES_GCM]),
        Attribute::Modifiable(false),
        Attribute::Id(p.dongle.0.to_vec()),
        Attribute::Label(KEY_LABEL.as_bytes().to_vec()),
        Attribute::Value(p.key.as_bytes().to_vec()),
    ];
    let result = session.create_object(&key_template);
    // The template's copy of the key is plain heap memory: wipe it.
    for a in key_template {
        if let Attribute::Value(v) = a {
            drop(Zeroizing::new(v));
        }
    }
    let new_key = result.map_err(failed("the token refused the dongle key"))?;
    let record = session
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Modifiable(false),
            Attribute::Label(RECORD_LABEL.as_bytes().to_vec()),
            Attribute::Application(APPLICATION.as_bytes().to_vec()),
            Attribute::Value(p.record.to_vec()),
        ])
        .map_err(failed("the token refused the attach record"));
    if let Err(e) = record {
        // Leave the token as it was: no key that nobody has a record for.
        let _ = session.destroy_object(new_key);
        return Err(e);
    }
    // The new dongle is complete; only now does the old one go.
    for o in old_keys.into_iter().chain(old_records) {
        session.destroy_object(o).map_err(failed("cannot remove the old dongle from the token"))?;
    }
    drop(session);
    let view = lib
        .tokens()?
        .into_iter()
        .find(|t| t.slot == slot)
        .ok_or(TokenError::Gone { action: "cannot read the token back" })?;
    Ok(view)
}
