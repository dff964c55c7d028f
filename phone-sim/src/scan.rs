//! Reading the desktop's QR code (docs/PROTOCOL.md#qr): from the `FIDO:/` text, from a text file
//! holding it, or from a PNG image of the code (decoded with `png` and `rqrr`).

use std::path::Path;

use hybrid_protocol::qr::QrCode;

use crate::error::PhoneError;

/// Parses `FIDO:/…` text, explaining what is wrong with a bad one.
pub fn qr_from_text(text: &str) -> Result<QrCode, PhoneError> {
    QrCode::parse(text).map_err(|e| PhoneError::Qr(e.to_string()))
}

/// Reads a file holding the `FIDO:/…` text (surrounding whitespace ignored); `-` reads
/// standard input, so a desktop's output can be piped in.
pub fn qr_from_file(path: &Path) -> Result<QrCode, PhoneError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(PhoneError::file("cannot read the QR from", path))?
    } else {
        std::fs::read_to_string(path).map_err(PhoneError::file("cannot read the QR file", path))?
    };
    qr_from_text(&text)
}

/// Decodes the QR code in a PNG image and parses it.
pub fn qr_from_image(path: &Path) -> Result<QrCode, PhoneError> {
    let bytes = std::fs::read(path).map_err(PhoneError::file("cannot read the QR image", path))?;
    let text =
        decode_png_qr(&bytes).map_err(|e| PhoneError::Qr(format!("{}: {e}", path.display())))?;
    qr_from_text(&text)
}

/// The text of the first QR code found in a PNG image.
pub fn decode_png_qr(bytes: &[u8]) -> Result<String, String> {
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(
            "JPEG images are not supported; save the QR code as PNG (e.g. a screenshot)".into(),
        );
    }
    if !bytes.starts_with(PNG_MAGIC) {
        return Err("not a PNG image".into());
    }
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("bad PNG: {e}"))?;
    let size = reader
        .output_buffer_size()
        .ok_or("bad PNG: the image is too large to decode")?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("bad PNG: {e}"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("indexed PNG was not expanded".into()),
    };
    let line = info.line_size;
    let luma = |x: usize, y: usize| -> u8 {
        let p = &buf[y * line + x * channels..];
        let (v, alpha) = match channels {
            1 => (p[0] as u32, 255),
            2 => (p[0] as u32, p[1] as u32),
            3 => (
                (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000,
                255,
            ),
            _ => (
                (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000,
                p[3] as u32,
            ),
        };
        // Transparent pixels count as white paper.
        ((v * alpha + 255 * (255 - alpha)) / 255) as u8
    };
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    let grids = img.detect_grids();
    let Some(grid) = grids.first() else {
        return Err("no QR code found in the image".into());
    };
    let (_, content) = grid
        .decode()
        .map_err(|e| format!("the QR code does not decode ({e})"))?;
    Ok(content)
}
