#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hybrid_protocol::qr::QrCode::from_cbor(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hybrid_protocol::qr::QrCode::parse(text);
    }
});
