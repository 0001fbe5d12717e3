#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    candor_fuzz::targets::entry(data);
});
