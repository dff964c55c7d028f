//! Showing the `FIDO:/` URL as a QR code (docs/PROTOCOL.md#qr): unicode half blocks for the
//! terminal, PNG and SVG files. The module grid comes from the `qrcode` crate; the terminal and
//! PNG renderings are drawn here from its modules. Also the self-contained HTML page that
//! reports share ([`html_page`], [`escape_html`]): the bridge's scan report and the demo's
//! proximity report.

use std::path::Path;

use qrcode::{Color, EcLevel, QrCode};

use crate::error::BridgeError;

const QUIET: usize = 2;

fn code(url: &str) -> Result<QrCode, BridgeError> {
    // Digits-only payloads after the prefix fit comfortably at level L; phones scan it at
    // arm's length.
    QrCode::with_error_correction_level(url.as_bytes(), EcLevel::L)
        .map_err(|e| BridgeError::Internal(format!("cannot build a QR code: {e}")))
}

fn modules(code: &QrCode, quiet: usize) -> (usize, Vec<bool>) {
    let w = code.width();
    let colors = code.to_colors();
    let size = w + 2 * quiet;
    let mut dark = vec![false; size * size];
    for y in 0..w {
        for x in 0..w {
            dark[(y + quiet) * size + x + quiet] = colors[y * w + x] == Color::Dark;
        }
    }
    (size, dark)
}

/// The QR code as text with unicode half blocks, two modules per character cell, with a quiet
/// zone. Dark modules are drawn as spaces on a white background (ANSI reverse colours: white
/// background, black foreground), so it scans on dark and light terminal themes alike.
pub fn terminal(url: &str) -> Result<String, BridgeError> {
    let code = code(url)?;
    let (size, dark) = modules(&code, QUIET);
    let at = |x: usize, y: usize| y < size && dark[y * size + x];
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        // Black text on a white background.
        out.push_str("\x1b[30;47m");
        for x in 0..size {
            out.push(match (at(x, y), at(x, y + 1)) {
                (false, false) => ' ',
                (true, false) => '▀',
                (false, true) => '▄',
                (true, true) => '█',
            });
        }
        out.push_str("\x1b[0m\n");
    }
    Ok(out)
}

/// The same half-block text without colour codes (for tests and files).
pub fn terminal_plain(url: &str) -> Result<String, BridgeError> {
    Ok(terminal(url)?
        .replace("\x1b[30;47m", "")
        .replace("\x1b[0m", ""))
}

/// Writes a greyscale PNG, `scale` pixels per module, with a 4-module quiet zone.
pub fn write_png(url: &str, path: &Path, scale: u32) -> Result<(), BridgeError> {
    let bytes = png_bytes(url, scale)?;
    std::fs::write(path, bytes).map_err(|e| BridgeError::file("writing the QR PNG", path, e))
}

/// The PNG file's bytes.
pub fn png_bytes(url: &str, scale: u32) -> Result<Vec<u8>, BridgeError> {
    let code = code(url)?;
    let (size, dark) = modules(&code, 4);
    let scale = scale.max(1) as usize;
    let px = size * scale;
    let mut pixels = vec![255u8; px * px];
    for y in 0..px {
        for x in 0..px {
            if dark[(y / scale) * size + x / scale] {
                pixels[y * px + x] = 0;
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, px as u32, px as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc
            .write_header()
            .map_err(|e| BridgeError::Internal(format!("encoding the QR PNG: {e}")))?;
        w.write_image_data(&pixels)
            .map_err(|e| BridgeError::Internal(format!("encoding the QR PNG: {e}")))?;
    }
    Ok(out)
}

/// The SVG document.
pub fn svg(url: &str) -> Result<String, BridgeError> {
    let code = code(url)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// Writes the SVG document.
pub fn write_svg(url: &str, path: &Path) -> Result<(), BridgeError> {
    std::fs::write(path, svg(url)?).map_err(|e| BridgeError::file("writing the QR SVG", path, e))
}

/// Escapes text for HTML.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained HTML page (inline style, no scripts, no external resources) titled
/// `title`; `body` is HTML already.
pub fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>body{{font-family:sans-serif;margin:1.5em;max-width:1000px;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}th{{background:#eee}}td.l,th.l{{text-align:left}}.bad{{color:#b00}}.ok{{color:#070}}</style></head>\n<body><h1>{t}</h1>\n{body}</body></html>\n",
        t = escape_html(title)
    )
}
