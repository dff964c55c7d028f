//! Criterion benchmarks of the protocol's hot paths: QR encode + parse, advert encrypt +
//! trial-decrypt, a full KNpsk0 handshake (both roles), and frame encrypt + decrypt.
//! Results are recorded in `protocol/BENCHMARKS.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hybrid_protocol::eid::{self, EidPlaintext};
use hybrid_protocol::handshake::{Initiator, Responder};
use hybrid_protocol::keys::{IdentityKey, QrSecret};
use hybrid_protocol::qr::{QrCode, RequestType};
use hybrid_protocol::tunnel::{Domain, RoutingId};
use rand::SeedableRng;

fn benches(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let identity = IdentityKey::random(&mut rng);
    let secret = QrSecret::random(&mut rng).unwrap();
    let qr = QrCode::new(
        identity.public_key(),
        secret.clone(),
        1_700_000_000,
        true,
        RequestType::GetAssertion,
    );

    c.bench_function("qr encode + parse", |b| {
        b.iter(|| QrCode::parse(&qr.to_url()).unwrap())
    });

    let key = secret.eid_key();
    let plaintext = EidPlaintext::new(RoutingId([1, 2, 3]), Domain(0), &mut rng).unwrap();
    c.bench_function("advert encrypt + trial-decrypt", |b| {
        b.iter(|| eid::decrypt(&key, &eid::encrypt(&key, &plaintext)).unwrap())
    });
    let other = QrSecret::random(&mut rng).unwrap().eid_key();
    let foreign = eid::encrypt(&other, &plaintext);
    c.bench_function("advert trial-decrypt, not ours", |b| {
        b.iter(|| eid::decrypt(&key, &foreign).unwrap_err())
    });

    let psk = plaintext.psk(secret.expose());
    c.bench_function("KNpsk0 handshake, both roles", |b| {
        b.iter(|| {
            let (waiting, m1) = Initiator::start_qr(&identity, &psk, &mut rng).unwrap();
            let (_, m2) =
                Responder::respond_qr(&identity.public_key(), &psk, &m1, &mut rng).unwrap();
            waiting.finish(&m2).unwrap()
        })
    });

    let (waiting, m1) = Initiator::start_qr(&identity, &psk, &mut rng).unwrap();
    let (mut phone, m2) =
        Responder::respond_qr(&identity.public_key(), &psk, &m1, &mut rng).unwrap();
    let mut desktop = waiting.finish(&m2).unwrap();
    let mut group = c.benchmark_group("frame encrypt + decrypt");
    for size in [256usize, 4096] {
        let payload = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| {
                let f = desktop.encrypt(p).unwrap();
                phone.decrypt(&f).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(protocol, benches);
criterion_main!(protocol);
