#![no_main]
use hybrid_protocol::handshake::{Initiator, Responder};
use hybrid_protocol::keys::{IdentityKey, Psk};
use hybrid_protocol::session::PostHandshake;
use libfuzzer_sys::fuzz_target;
use rand_core::OsRng;

fuzz_target!(|data: &[u8]| {
    let id = IdentityKey::from_bytes(&[3; 32]).unwrap();
    let psk = Psk::from_bytes([4; 32]);
    let (waiting, m1) = Initiator::start_qr(&id, &psk, &mut OsRng).unwrap();
    let (_, m2) = Responder::respond_qr(&id.public_key(), &psk, &m1, &mut OsRng).unwrap();
    let mut desktop = waiting.finish(&m2).unwrap();
    let _ = desktop.decrypt_message(data);
    let _ = PostHandshake::decode(data);
    let _ = hybrid_protocol::session::Message::decode(data);
});
