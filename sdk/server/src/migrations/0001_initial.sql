-- The first schema. Times are Unix seconds (UTC); ids of people-facing
-- objects are text, internal links are integer keys. Secrets are stored
-- only encrypted under the master key ({blob} *_sealed) or as SHA-256
-- hashes (tokens, activation codes).

CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE admin_tokens (
    id {id},
    token_hash {blob} NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE vendors (
    id {id},
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    -- The vendor's own signing key (public), learnt from its first certificate.
    vendor_key {blob},
    -- The server's issuing key for this vendor.
    issuer_public {blob} NOT NULL,
    issuer_secret_sealed {blob} NOT NULL,
    -- The vendor's certificate for the issuing key, and its expiry.
    issuer_cert {blob},
    cert_not_after BIGINT,
    -- The price plan, as JSON (see billing.rs).
    plan TEXT NOT NULL
);

CREATE TABLE vendor_tokens (
    id {id},
    vendor_id BIGINT NOT NULL REFERENCES vendors(id),
    token_hash {blob} NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE products (
    id {id},
    vendor_id BIGINT NOT NULL REFERENCES vendors(id),
    product TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE releases (
    id {id},
    product_id BIGINT NOT NULL REFERENCES products(id),
    major BIGINT NOT NULL,
    minor BIGINT NOT NULL,
    patch BIGINT NOT NULL,
    key_id {blob} NOT NULL,
    content_key_sealed {blob} NOT NULL,
    package_sha256 TEXT,
    package_len BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (product_id, major, minor, patch)
);

CREATE TABLE codes (
    id {id},
    vendor_id BIGINT NOT NULL REFERENCES vendors(id),
    product_id BIGINT NOT NULL REFERENCES products(id),
    code_hash {blob} NOT NULL UNIQUE,
    -- The last five characters, so a vendor can tell codes apart.
    hint TEXT NOT NULL,
    releases TEXT NOT NULL,
    licensee TEXT NOT NULL,
    features TEXT NOT NULL,
    license_days BIGINT,
    max_activations BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    transfer_limit BIGINT NOT NULL,
    transfers BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE licenses (
    id {id},
    vendor_id BIGINT NOT NULL REFERENCES vendors(id),
    product_id BIGINT NOT NULL REFERENCES products(id),
    license_id {blob} NOT NULL UNIQUE,
    device_code TEXT NOT NULL,
    licensee TEXT NOT NULL,
    releases TEXT NOT NULL,
    code_id BIGINT REFERENCES codes(id),
    -- The client's idempotency key: a retried request gets this license back.
    request_key TEXT,
    bytes {blob} NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    UNIQUE (vendor_id, request_key)
);
CREATE INDEX licenses_by_vendor ON licenses (vendor_id, id);

CREATE TABLE activations (
    id {id},
    code_id BIGINT NOT NULL REFERENCES codes(id),
    device_fp {blob} NOT NULL,
    license_row BIGINT NOT NULL REFERENCES licenses(id),
    created_at BIGINT NOT NULL,
    deactivated_at BIGINT
);
-- One live activation per code and device: a repeat activation finds it.
CREATE UNIQUE INDEX activations_live ON activations (code_id, device_fp) WHERE deactivated_at IS NULL;

CREATE TABLE ledger (
    vendor_id BIGINT NOT NULL REFERENCES vendors(id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    product TEXT NOT NULL,
    license_id {blob} NOT NULL,
    device_fp {blob} NOT NULL,
    seats BIGINT NOT NULL,
    prev_hash {blob} NOT NULL,
    hash {blob} NOT NULL,
    PRIMARY KEY (vendor_id, seq)
);

CREATE TABLE ledger_heads (
    vendor_id BIGINT PRIMARY KEY REFERENCES vendors(id),
    seq BIGINT NOT NULL,
    hash {blob} NOT NULL
);
