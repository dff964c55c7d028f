#![no_main]
use hybrid_protocol::ctap::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = MakeCredentialRequest::from_cbor(data);
    let _ = GetAssertionRequest::from_cbor(data);
    let _ = MakeCredentialResponse::from_cbor(data);
    let _ = GetAssertionResponse::from_cbor(data);
    let _ = GetInfo::from_cbor(data);
    let _ = AuthenticatorData::parse(data);
    let _ = hybrid_protocol::linking::ClientPayload::from_cbor(data);
});
