-- Billing a vendor can check against a dishonest operator (issue 25).
--
-- Plans have a history: a change takes effect from a stated time, never
-- backwards, and an invoice prices each part of a month by the plan in
-- force then. The plan a vendor had before this migration applied to its
-- whole ledger, so it becomes the plan in force from the beginning.
-- `vendors.plan` stays only because old rows have it; nothing reads it now.
CREATE TABLE plans (
    vendor_id BIGINT NOT NULL REFERENCES vendors(id),
    effective_from BIGINT NOT NULL,
    plan TEXT NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (vendor_id, effective_from)
);
INSERT INTO plans (vendor_id, effective_from, plan, set_at) SELECT id, 0, plan, created_at FROM vendors;

-- Activations, transfers and deactivations name their activation code, so a
-- vendor can count each code's activations against its limits.
ALTER TABLE ledger ADD COLUMN code_id BIGINT;

-- The time of the vendor's last entry: entries are stamped when they are
-- appended under the head's lock, and never earlier than the one before.
ALTER TABLE ledger_heads ADD COLUMN at BIGINT NOT NULL DEFAULT 0;
