//! Files a published crate carries as its own copy of the repository's `testdata/` (a
//! crate may not include files outside its package): each copy is byte for byte the
//! shared original, so tests and the crates speak of the same keys and messages.

use alipay_msg_simulator::{test_keys, PLATFORM_MESSAGE_EXAMPLES};

fn testdata(path: &str) -> String {
    let full = format!("{}/../testdata/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

#[test]
fn the_simulators_test_keys_are_the_shared_vectors() {
    for (copy, original) in [
        (
            test_keys::APP_PRIVATE_KEY,
            "vectors/keys/app_private_pkcs1.pem",
        ),
        (test_keys::APP_PUBLIC_KEY, "vectors/keys/app_public.pem"),
        (
            test_keys::PLATFORM_PRIVATE_KEY,
            "vectors/keys/alipay_private_pkcs1.pem",
        ),
        (
            test_keys::PLATFORM_PUBLIC_KEY,
            "vectors/keys/alipay_public.pem",
        ),
    ] {
        assert_eq!(
            copy,
            testdata(original),
            "simulator/keys/ differs from testdata/{original}"
        );
    }
}

#[test]
fn the_simulators_message_examples_are_the_shared_examples() {
    assert_eq!(
        PLATFORM_MESSAGE_EXAMPLES,
        testdata("examples/platform_messages.jsonl"),
        "simulator/data/platform_messages.jsonl differs from testdata/examples/"
    );
}
