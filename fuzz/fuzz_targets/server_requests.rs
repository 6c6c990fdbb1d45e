//! Fuzz target: `sealrun_server::fuzzing::request` (see that function for what it checks).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sealrun_server::fuzzing::request(data));
