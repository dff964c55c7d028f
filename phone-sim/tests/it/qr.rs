//! QR codes from text, files and PNG images.

use hybrid_protocol::keys::{IdentityKey, QrSecret};
use hybrid_protocol::qr::{QrCode, RequestType};
use rand_core::OsRng;

fn sample() -> QrCode {
    QrCode::new(
        IdentityKey::random(&mut OsRng).public_key(),
        QrSecret::random(&mut OsRng).unwrap(),
        1_700_000_000,
        true,
        RequestType::GetAssertion,
    )
}

/// Renders `text` as a greyscale PNG: `scale` pixels per module, 4-module quiet zone.
pub(crate) fn qr_png(text: &str, scale: usize) -> Vec<u8> {
    let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
    let n = code.width();
    let colors = code.to_colors();
    let size = (n + 8) * scale;
    let mut pixels = vec![255u8; size * size];
    for y in 0..n {
        for x in 0..n {
            if colors[y * n + x] == qrcode::Color::Dark {
                for dy in 0..scale {
                    for dx in 0..scale {
                        pixels[((y + 4) * scale + dy) * size + (x + 4) * scale + dx] = 0;
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, size as u32, size as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&pixels).unwrap();
    }
    out
}

#[test]
fn qr_from_string_and_file() {
    let qr = sample();
    let url = qr.to_url();
    assert_eq!(phone_sim::qr_from_text(&url).unwrap(), qr);
    assert_eq!(
        phone_sim::qr_from_text(&format!("  {}\n", url.to_lowercase())).unwrap(),
        qr
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("qr.txt");
    std::fs::write(&f, format!("{url}\n")).unwrap();
    assert_eq!(phone_sim::qr_from_file(&f).unwrap(), qr);
}

#[test]
fn qr_from_generated_png() {
    let qr = sample();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("qr.png");
    std::fs::write(&f, qr_png(&qr.to_url(), 4)).unwrap();
    assert_eq!(phone_sim::qr_from_image(&f).unwrap(), qr);
}

#[test]
fn bad_qr_codes_are_explained() {
    let cases = [
        ("https://example.com", "FIDO:/"),
        ("FIDO:/12a", "not a decimal digit"),
        ("FIDO:/1234", "digits cannot be decoded"),
        ("FIDO:/", "cannot use this QR code"),
    ];
    for (text, expected) in cases {
        let e = phone_sim::qr_from_text(text).unwrap_err().to_string();
        assert!(e.contains(expected), "{text}: {e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("not.png");
    std::fs::write(&f, b"\xff\xd8\xff\xe0 jpeg").unwrap();
    let e = phone_sim::qr_from_image(&f).unwrap_err().to_string();
    assert!(e.contains("JPEG"), "{e}");
    std::fs::write(&f, qr_png("hello, not FIDO", 3)).unwrap();
    let e = phone_sim::qr_from_image(&f).unwrap_err().to_string();
    assert!(e.contains("FIDO:/"), "{e}");
    let blank = {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 50, 50);
        enc.set_color(png::ColorType::Grayscale);
        enc.write_header()
            .unwrap()
            .write_image_data(&[255u8; 2500])
            .unwrap();
        out
    };
    std::fs::write(&f, blank).unwrap();
    let e = phone_sim::qr_from_image(&f).unwrap_err().to_string();
    assert!(e.contains("no QR code found"), "{e}");
}
