//! QR rendering: terminal half blocks, PNG decodable back to the same URL, SVG.

use bridge::render;

const URL: &str = "FIDO:/123456789012345678901234567890123456789012345678901234567890";

#[test]
fn terminal_rendering_has_quiet_zone_and_half_blocks() {
    let t = render::terminal_plain(URL).unwrap();
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines.len() > 10);
    assert!(
        lines[0].chars().all(|c| c == ' '),
        "first row is quiet zone"
    );
    assert!(t.contains('▀') && t.contains('█'));
    let coloured = render::terminal(URL).unwrap();
    assert!(
        coloured.contains("\x1b[30;47m"),
        "black on white, for dark and light themes"
    );
}

#[test]
fn png_decodes_back_to_the_url() {
    let bytes = render::png_bytes(URL, 4).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.as_slice()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, URL);
}

#[test]
fn real_qr_url_round_trips_through_png() {
    use hybrid_protocol::keys::{IdentityKey, QrSecret};
    use hybrid_protocol::qr::{QrCode, RequestType};
    let mut rng = rand_core::OsRng;
    let url = QrCode::new(
        IdentityKey::random(&mut rng).public_key(),
        QrSecret::random(&mut rng).unwrap(),
        1_700_000_000,
        true,
        RequestType::MakeCredential,
    )
    .to_url();
    let bytes = render::png_bytes(&url, 3).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes.as_slice()))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let w = info.width as usize;
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(w, info.height as usize, |x, y| buf[y * w + x]);
    let (_, content) = img.detect_grids()[0].decode().unwrap();
    assert_eq!(content, url);
}

#[test]
fn svg_is_well_formed() {
    let svg = render::svg(URL).unwrap();
    assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
}
