#![no_main]
use hybrid_protocol::handshake::{Initiator, Responder};
use hybrid_protocol::keys::{IdentityKey, Psk};
use libfuzzer_sys::fuzz_target;
use rand_core::OsRng;

fuzz_target!(|data: &[u8]| {
    let id = IdentityKey::from_bytes(&[3; 32]).unwrap();
    let psk = Psk::from_bytes([4; 32]);
    let _ = Responder::respond_qr(&id.public_key(), &psk, data, &mut OsRng);
    let _ = Responder::respond_linked(&id, &psk, data, &mut OsRng);
    let (waiting, _) = Initiator::start_qr(&id, &psk, &mut OsRng).unwrap();
    let _ = waiting.finish(data);
});
