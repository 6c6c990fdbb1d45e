//! Fuzz target: `sealrun_format::fuzzing::clock` (see that function for what it checks).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealrun_format::fuzzing::clock(data));
