//! Every length the formats accept is bounded here, with the reason.

/// Largest module a package may carry: 4 GiB is the most a wasm32 linear
/// address space can refer to, and far above any real module.
pub const MAX_MODULE_LEN: u64 = 4 << 30;
/// Smallest chunk size, as log2 (4 KiB): smaller chunks waste tag space.
pub const MIN_CHUNK_SIZE_LOG2: u8 = 12;
/// Largest chunk size, as log2 (16 MiB): bounds the memory one chunk needs.
pub const MAX_CHUNK_SIZE_LOG2: u8 = 24;
/// Default chunk size, as log2 (64 KiB): small enough for a progress bar and
/// parallel work, large enough that tags and nonces cost under 0.03%.
pub const DEFAULT_CHUNK_SIZE_LOG2: u8 = 16;
/// Largest manifest: it holds names and a short capability list, never data.
pub const MAX_MANIFEST_LEN: u32 = 16 * 1024;
/// Largest license body: terms plus up to [`MAX_WRAPPED_KEYS`] key entries.
pub const MAX_LICENSE_BODY_LEN: u32 = 16 * 1024;
/// Largest license file: header, the largest body, the signature.
pub const MAX_LICENSE_FILE_LEN: u64 = 14 + MAX_LICENSE_BODY_LEN as u64 + 64;
/// Longest product id (reverse-DNS names are far shorter in practice).
pub const MAX_PRODUCT_ID_LEN: usize = 128;
/// Longest display name shown to end users.
pub const MAX_DISPLAY_NAME_LEN: usize = 200;
/// Longest licensee name.
pub const MAX_LICENSEE_LEN: usize = 256;
/// Most features one license may enable.
pub const MAX_FEATURES: usize = 32;
/// Longest feature name.
pub const MAX_FEATURE_LEN: usize = 64;
/// Longest feature value (license v2): a number, a tier or a short list,
/// shown to people and read by the app; 128 bytes keeps the largest license
/// body under [`MAX_LICENSE_BODY_LEN`].
pub const MAX_FEATURE_VALUE_LEN: usize = 128;
/// Most meters one license may carry (license v2): a few counted actions
/// per product; 16 keeps the largest body under [`MAX_LICENSE_BODY_LEN`].
pub const MAX_METERS: usize = 16;
/// Largest meter limit: 2^53 - 1, the largest integer a JSON number (an
/// IEEE double) holds exactly, so limits survive every API and report.
pub const MAX_METER_LIMIT: u64 = (1 << 53) - 1;
/// Most capabilities a manifest may request.
pub const MAX_CAPABILITIES: usize = 32;
/// Longest capability value (a guest path or an environment variable name).
pub const MAX_CAPABILITY_LEN: usize = 256;
/// Most content keys (one per release) one license may carry.
pub const MAX_WRAPPED_KEYS: usize = 64;
/// Largest compiled module a cache entry may hold: Cranelift's output for the
/// largest module ([`MAX_MODULE_LEN`]) is a few times its size; 16 GiB bounds
/// a forged length without refusing anything real.
pub const MAX_COMPILED_CODE_LEN: u64 = 16 << 30;
/// Longest label of a cache entry (product, release and display name).
pub const MAX_CACHE_LABEL_LEN: usize = 512;
/// Most precompiled artifacts one package may carry: one per target a vendor
/// supports natively (x86-64 and AArch64 on two OSes fit).
pub const MAX_NATIVE_CODE: usize = 4;
/// Largest icon a manifest may carry: a 48- or 64-pixel PNG is 2–3 KiB and
/// an SVG icon a few KiB; 7 KiB keeps the largest manifest (8 714 bytes
/// without an icon, plus 3 + 7 168) under [`MAX_MANIFEST_LEN`].
pub const MAX_ICON_LEN: usize = 7 * 1024;
/// Longest target name, e.g. `x86_64-linux`.
pub const MAX_TARGET_NAME_LEN: usize = 32;
/// Largest dongle record body: ids, keys, the device and an issuer
/// certificate need under 200 bytes; 512 leaves room without inviting data.
pub const MAX_DONGLE_RECORD_BODY_LEN: u16 = 512;
/// Most copies of an app one dongle license may let run at once: a dongle
/// sits on one device, where more than a thousand would be no limit at all.
pub const MAX_DONGLE_COUNT: u32 = 1024;
/// Most seats one floating license may have: a site license manager serves
/// one organisation's network; 100,000 is more computers than any site has
/// and keeps every count well inside a u32.
pub const MAX_FLOATING_SEATS: u32 = 100_000;
