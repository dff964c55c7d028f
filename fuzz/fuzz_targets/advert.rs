#![no_main]
use hybrid_protocol::keys::EidKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = EidKey::from_bytes([7; 64]);
    let _ = hybrid_protocol::eid::decrypt(&key, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<hybrid_protocol::medium::AdvertLine>();
    }
});
