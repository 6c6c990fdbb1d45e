//! Fuzz target: `sealrun_floatd::fuzzing::request` (see that function for what it checks).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealrun_floatd::fuzzing::request(data));
