#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alipay_msg_core::fuzzing::notify_endpoint(data));
