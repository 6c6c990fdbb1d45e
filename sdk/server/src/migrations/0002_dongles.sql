-- Hardware keys provisioned through the server (issue 5). The dongle key is
-- sealed under the master key with the row's vendor and dongle id as
-- associated data; the attach record is public (it is written on the token).
CREATE TABLE dongles (
    id {id},
    vendor_id BIGINT NOT NULL REFERENCES vendors(id),
    dongle_id {blob} NOT NULL UNIQUE,
    device_code TEXT NOT NULL,
    key_sealed {blob} NOT NULL,
    record {blob} NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX dongles_vendor ON dongles (vendor_id);
