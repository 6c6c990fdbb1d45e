-- License terms of format version 2 (issue 18) in activation codes.
--
-- `codes.features` keeps its column: rows from before hold feature names
-- joined by commas; new rows hold one feature per line, `NAME` or
-- `NAME=VALUE` (a value has no control characters, so no line breaks).
-- Meters are one `NAME=LIMIT` or `NAME=LIMIT/month` per line; feature_days
-- one `NAME=DAYS` per line: the feature ends that many days after the
-- activation.
ALTER TABLE codes ADD COLUMN meters TEXT NOT NULL DEFAULT '';
ALTER TABLE codes ADD COLUMN feature_days TEXT NOT NULL DEFAULT '';
