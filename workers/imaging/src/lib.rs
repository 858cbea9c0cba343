//! # imgflow-imaging
//!
//! Decodes a JPEG or PNG into a small upright RGB image under a memory budget, for the
//! thumbnail stage and the local detector's input. A hostile file of a few hundred KB
//! can declare 10,000 × 10,000 16-bit pixels (800 MB decoded); decoding it whole, as
//! `image`'s `DynamicImage::from_decoder` does, takes a process down. Here:
//!
//! - the size the decoder would have to hold is computed from the header, before any pixel
//!   is decoded, and refused over the budget ([`DecodeError::OverBudget`]);
//! - JPEGs are downscaled inside the decoder (DCT scaling by 1/2, 1/4 or 1/8), so a 100 Mpx
//!   photo never exists at full size;
//! - PNGs are read row by row and box-averaged as they come (interlaced PNGs, whose rows
//!   arrive in seven passes, into sums kept per output pixel: never the full-size frame);
//! - the EXIF orientation (JPEG APP1, PNG eXIf) is applied to the small image.
//!
//! It also checks images without decoding them ([`probe`]): ingest and the upload route
//! read format and size from the first bytes and refuse what Rekognition would, and reads
//! their EXIF metadata from the same bytes ([`exif`]).
//!
//! # Layout
//! - [`decode_scaled`]: the one decoding entry point; [`thumbnail_jpeg`] re-encodes its result.
//! - [`probe`]: format and dimensions from the first bytes, truncation from the last.
//! - [`exif`]: taken-at, camera, lens, exposure, and GPS only when asked.
//! - [`decoded_bytes`]: the budget's arithmetic, shared with ingest's header check.

pub mod exif;
pub mod phash;
pub mod probe;

use std::io::Cursor;

use image::{metadata::Orientation, DynamicImage, RgbImage};

/// The decode budget unless configured otherwise: what an 8-bit RGBA image at Rekognition's
/// largest size (10,000 × 10,000 px) decodes to. Deeper or larger images are refused.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 400_000_000;

/// Why an image could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Decoding would hold more than the budget.
    #[error("image is {width}×{height} px and would decode to {needed} bytes; the decode budget is {budget} bytes")]
    OverBudget {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Bytes the decoder would hold.
        needed: u64,
        /// The budget.
        budget: u64,
    },
    /// Neither a JPEG nor a PNG.
    #[error("not a JPEG or PNG")]
    Unsupported,
    /// The file is damaged.
    #[error("corrupt {format}: {message}")]
    Corrupt {
        /// `JPEG` or `PNG`.
        format: &'static str,
        /// The decoder's words.
        message: String,
    },
}

/// Bytes a decoder holds for an image: width × height × channels × bytes per sample.
/// Saturates rather than overflows, so a forged header is simply over any budget.
pub fn decoded_bytes(width: u32, height: u32, channels: u32, bytes_per_sample: u32) -> u64 {
    u64::from(width)
        .saturating_mul(u64::from(height))
        .saturating_mul(u64::from(channels))
        .saturating_mul(u64::from(bytes_per_sample))
}

fn check_budget(width: u32, height: u32, needed: u64, budget: u64) -> Result<(), DecodeError> {
    if needed > budget {
        return Err(DecodeError::OverBudget {
            width,
            height,
            needed,
            budget,
        });
    }
    Ok(())
}

/// Decodes `encoded` into an upright RGB image whose longer side is at most `max_side`
/// (smaller images keep their size), holding no more than `budget` bytes of pixels.
pub fn decode_scaled(encoded: &[u8], max_side: u32, budget: u64) -> Result<RgbImage, DecodeError> {
    let max_side = max_side.max(1);
    let (image, orientation) = if encoded.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(encoded, max_side, budget)?
    } else if encoded.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(encoded, max_side, budget)?
    } else {
        return Err(DecodeError::Unsupported);
    };
    let mut image = DynamicImage::ImageRgb8(shrink_to(image, max_side));
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    Ok(image.into_rgb8())
}

/// A thumbnail: `encoded` decoded as [`decode_scaled`] does, re-encoded as a JPEG (quality
/// 80). Returns the JPEG with its width and height.
pub fn thumbnail_jpeg(
    encoded: &[u8],
    max_side: u32,
    budget: u64,
) -> Result<(Vec<u8>, u32, u32), DecodeError> {
    let small = decode_scaled(encoded, max_side, budget)?;
    jpeg_of(&small)
}

/// A thumbnail JPEG with its width and height.
pub type Jpeg = (Vec<u8>, u32, u32);

/// [`thumbnail_jpeg`] and the perceptual hash of the same decoded image (`None` for a
/// featureless one): one decode for both.
pub fn thumbnail_and_hash(
    encoded: &[u8],
    max_side: u32,
    budget: u64,
) -> Result<(Jpeg, Option<phash::PerceptualHash>), DecodeError> {
    let small = decode_scaled(encoded, max_side, budget)?;
    let hash = phash::perceptual_hash(&small).ok();
    Ok((jpeg_of(&small)?, hash))
}

fn jpeg_of(small: &RgbImage) -> Result<Jpeg, DecodeError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(small)
        .map_err(|e| DecodeError::Corrupt {
            format: "JPEG",
            message: format!("encoding the thumbnail: {e}"),
        })?;
    Ok((out, small.width(), small.height()))
}

/// A rectangle of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Region {
    /// All of `image`.
    pub fn whole(image: &RgbImage) -> Self {
        let (width, height) = image.dimensions();
        Self {
            left: 0,
            top: 0,
            width,
            height,
        }
    }
}

/// `region` of `image` resized to `width`×`height`, bilinear, with SIMD (AVX2, SSE4.1 or NEON,
/// chosen at run time): about a tenth of the time of `image`'s generic filters. Fails on a
/// region outside the image.
pub fn resize(
    image: &RgbImage,
    region: Region,
    width: u32,
    height: u32,
) -> Result<RgbImage, String> {
    use fast_image_resize::{images, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let (source_width, source_height) = image.dimensions();
    let source =
        images::ImageRef::new(source_width, source_height, image.as_raw(), PixelType::U8x3)
            .map_err(|e| format!("resizing: {e}"))?;
    let mut out = images::Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(
            f64::from(region.left),
            f64::from(region.top),
            f64::from(region.width),
            f64::from(region.height),
        );
    Resizer::new()
        .resize(&source, &mut out, &options)
        .map_err(|e| format!("resizing: {e}"))?;
    RgbImage::from_raw(width, height, out.into_vec()).ok_or_else(|| "resizing: short buffer".into())
}

/// `image` with its longer side brought down to `max_side`, keeping its shape.
fn shrink_to(image: RgbImage, max_side: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let longer = width.max(height);
    if longer <= max_side {
        return image;
    }
    let scaled = |side: u32| {
        u32::try_from(u64::from(side) * u64::from(max_side) / u64::from(longer))
            .map_or(1, |s| s.max(1))
    };
    // A decoded image is never empty and the region is all of it, so this cannot fail; were it
    // ever to, `image`'s generic filter gives the same answer, slower.
    resize(&image, Region::whole(&image), scaled(width), scaled(height)).unwrap_or_else(|_| {
        DynamicImage::ImageRgb8(image)
            .thumbnail(max_side, max_side)
            .into_rgb8()
    })
}

type Decoded = (RgbImage, Option<Orientation>);

fn corrupt(format: &'static str) -> impl Fn(String) -> DecodeError {
    move |message| DecodeError::Corrupt { format, message }
}

fn decode_jpeg(encoded: &[u8], max_side: u32, budget: u64) -> Result<Decoded, DecodeError> {
    use jpeg_decoder::{CodingProcess, PixelFormat};
    let bad = corrupt("JPEG");
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(encoded));
    decoder.set_max_decoding_buffer_size(usize::try_from(budget).unwrap_or(usize::MAX));
    decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let info = decoder
        .info()
        .ok_or_else(|| bad("no frame header".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let channels = info.pixel_format.pixel_bytes() as u32;
    // A progressive JPEG keeps every DCT coefficient (two bytes a sample) until its last scan.
    let per_sample = if info.coding_process == CodingProcess::DctProgressive {
        2
    } else {
        1
    };
    check_budget(
        width,
        height,
        decoded_bytes(width, height, channels, per_sample),
        budget,
    )?;
    let longer = width.max(height).max(1);
    let (want_w, want_h) = if longer > max_side {
        (
            (u64::from(width) * u64::from(max_side) / u64::from(longer)).max(1),
            (u64::from(height) * u64::from(max_side) / u64::from(longer)).max(1),
        )
    } else {
        (u64::from(width), u64::from(height))
    };
    let (out_w, out_h) = decoder
        .scale(want_w as u16, want_h as u16)
        .map_err(|e| bad(e.to_string()))?;
    let pixels = decoder.decode().map_err(|e| bad(e.to_string()))?;
    let orientation = decoder.exif_data().and_then(Orientation::from_exif_chunk);
    let (out_w, out_h) = (u32::from(out_w), u32::from(out_h));
    let step = info.pixel_format.pixel_bytes();
    let samples = out_w as usize * out_h as usize * step;
    if pixels.len() < samples {
        return Err(bad("fewer pixels than the frame declares".into()));
    }
    if info.pixel_format == PixelFormat::RGB24 {
        // The common case needs no conversion: the decoder's buffer is the image.
        let mut pixels = pixels;
        pixels.truncate(samples);
        let rgb = RgbImage::from_raw(out_w, out_h, pixels)
            .ok_or_else(|| bad("fewer pixels than the frame declares".into()))?;
        return Ok((rgb, orientation));
    }
    let rgb = RgbImage::from_fn(out_w, out_h, |x, y| {
        let at = (y as usize * out_w as usize + x as usize) * step;
        let p = &pixels[at..at + step];
        image::Rgb(match info.pixel_format {
            PixelFormat::L8 => [p[0]; 3],
            // Big-endian samples: the high byte is enough for a picture.
            PixelFormat::L16 => [p[0]; 3],
            PixelFormat::RGB24 => [p[0], p[1], p[2]],
            // Adobe's inverted CMYK, as the decoder returns it.
            PixelFormat::CMYK32 => {
                let k = u16::from(p[3]);
                [0, 1, 2].map(|c| (u16::from(p[c]) * k / 255) as u8)
            }
        })
    });
    Ok((rgb, orientation))
}

/// Adam7's passes: first column and row, and the steps between the pixels each one carries.
const ADAM7: [(u32, u32, u32, u32); 7] = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
];

fn decode_png(encoded: &[u8], max_side: u32, budget: u64) -> Result<Decoded, DecodeError> {
    let bad = corrupt("PNG");
    // The decoder's own allocations (chunk buffers, metadata) fall under the same budget.
    let limits = png::Limits {
        bytes: usize::try_from(budget).unwrap_or(usize::MAX),
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(encoded), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| bad(e.to_string()))?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    let per_sample = if info.bit_depth == png::BitDepth::Sixteen {
        2
    } else {
        1
    };
    // Palette images expand to RGB(A) on decode.
    let channels = match info.color_type {
        png::ColorType::Indexed => 4,
        other => other.samples() as u32,
    };
    check_budget(
        width,
        height,
        decoded_bytes(width, height, channels, per_sample),
        budget,
    )?;
    let orientation = info
        .exif_metadata
        .as_deref()
        .and_then(Orientation::from_exif_chunk);
    let interlaced = info.interlaced;
    let samples = reader.output_color_type().0.samples();
    let rgb_at = move |data: &[u8], x: usize| -> [u8; 3] {
        let p = &data[x * samples..x * samples + samples];
        if samples >= 3 {
            [p[0], p[1], p[2]]
        } else {
            [p[0]; 3]
        }
    };

    // Box-average k × k blocks as rows arrive; the result's longer side stays ≥ max_side so
    // the final resize still has the detail it needs.
    let k = (width.max(height) / max_side).max(1);
    let (out_w, out_h) = (width.div_ceil(k), height.div_ceil(k));
    if interlaced {
        // Adam7's seven passes each cover a sparse grid of the whole image, so no block is
        // complete before the last pass: every output pixel's sums are kept (12 bytes per
        // output pixel), never the full-size frame.
        let mut sums = vec![0u32; out_w as usize * out_h as usize * 3];
        for (x0, y0, dx, dy) in ADAM7 {
            let samples = width.saturating_sub(x0).div_ceil(dx);
            let lines = height.saturating_sub(y0).div_ceil(dy);
            if samples == 0 {
                continue;
            }
            for line in 0..lines {
                let row = reader
                    .next_row()
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad("the image data ends early".into()))?;
                let data = row.data();
                let oy = (y0 + line * dy) / k;
                for i in 0..samples {
                    let ox = (x0 + i * dx) / k;
                    let px = rgb_at(data, i as usize);
                    let at = (oy as usize * out_w as usize + ox as usize) * 3;
                    for c in 0..3 {
                        sums[at + c] += u32::from(px[c]);
                    }
                }
            }
        }
        let out = RgbImage::from_fn(out_w, out_h, |ox, oy| {
            let n = k.min(width - ox * k) * k.min(height - oy * k);
            let at = (oy as usize * out_w as usize + ox as usize) * 3;
            image::Rgb([0, 1, 2].map(|c| (sums[at + c] / n) as u8))
        });
        return Ok((out, orientation));
    }

    let mut out = RgbImage::new(out_w, out_h);
    let mut sums = vec![0u32; out_w as usize * 3];
    let (mut rows_in_block, mut out_y) = (0u32, 0u32);
    let mut flush = |sums: &mut Vec<u32>, rows: u32, out_y: u32| {
        for ox in 0..out_w {
            let cols = k.min(width - ox * k);
            let n = cols * rows;
            let s = &mut sums[ox as usize * 3..ox as usize * 3 + 3];
            out.put_pixel(ox, out_y, image::Rgb([0, 1, 2].map(|c| (s[c] / n) as u8)));
            s.fill(0);
        }
    };
    while let Some(row) = reader.next_row().map_err(|e| bad(e.to_string()))? {
        let data = row.data();
        for x in 0..width as usize {
            let px = rgb_at(data, x);
            let at = (x / k as usize) * 3;
            for c in 0..3 {
                sums[at + c] += u32::from(px[c]);
            }
        }
        rows_in_block += 1;
        if rows_in_block == k && out_y < out_h {
            flush(&mut sums, rows_in_block, out_y);
            rows_in_block = 0;
            out_y += 1;
        }
    }
    if rows_in_block > 0 && out_y < out_h {
        flush(&mut sums, rows_in_block, out_y);
    }
    Ok((out, orientation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgba, RgbaImage};

    fn gradient(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        })
    }

    fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    /// An EXIF block (little-endian TIFF) holding only an orientation.
    fn exif_orientation(value: u16) -> Vec<u8> {
        let mut exif = b"II\x2a\x00\x08\x00\x00\x00\x01\x00".to_vec();
        exif.extend_from_slice(&0x0112u16.to_le_bytes());
        exif.extend_from_slice(&3u16.to_le_bytes());
        exif.extend_from_slice(&1u32.to_le_bytes());
        exif.extend_from_slice(&value.to_le_bytes());
        exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        exif
    }

    #[test]
    fn large_jpegs_are_scaled_in_the_decoder_and_keep_their_shape() {
        let jpeg = encode(
            &DynamicImage::ImageRgb8(gradient(2000, 1000)),
            image::ImageFormat::Jpeg,
        );
        let small = decode_scaled(&jpeg, 320, DEFAULT_MAX_DECODED_BYTES).unwrap();
        assert_eq!(small.dimensions(), (320, 160));
    }

    #[test]
    fn large_pngs_are_averaged_row_by_row() {
        let mut image = RgbaImage::new(1000, 600);
        for (x, _, p) in image.enumerate_pixels_mut() {
            *p = if x < 500 {
                Rgba([255, 0, 0, 255])
            } else {
                Rgba([0, 0, 255, 255])
            };
        }
        let png = encode(&DynamicImage::ImageRgba8(image), image::ImageFormat::Png);
        let small = decode_scaled(&png, 100, DEFAULT_MAX_DECODED_BYTES).unwrap();
        assert_eq!(small.dimensions(), (100, 60));
        assert_eq!(small.get_pixel(10, 30).0, [255, 0, 0]);
        assert_eq!(small.get_pixel(90, 30).0, [0, 0, 255]);
    }

    #[test]
    fn small_images_keep_their_size() {
        let png = encode(
            &DynamicImage::ImageRgb8(gradient(90, 81)),
            image::ImageFormat::Png,
        );
        let same = decode_scaled(&png, 320, DEFAULT_MAX_DECODED_BYTES).unwrap();
        assert_eq!(same, gradient(90, 81), "lossless at k = 1");
    }

    #[test]
    fn the_exif_orientation_is_applied() {
        let mut jpeg = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut jpeg);
        encoder.set_exif_metadata(exif_orientation(6)).unwrap();
        encoder
            .write_image(
                gradient(200, 100).as_raw(),
                200,
                100,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        let upright = decode_scaled(&jpeg, 320, DEFAULT_MAX_DECODED_BYTES).unwrap();
        assert_eq!(upright.dimensions(), (100, 200), "rotated 90° clockwise");
    }

    #[test]
    fn a_declared_size_over_the_budget_is_refused_before_decoding() {
        // A header and two bytes of data: 10,000 × 10,000 16-bit RGBA (800 MB).
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let ihdr = [
            &10_000u32.to_be_bytes()[..],
            &10_000u32.to_be_bytes()[..],
            &[16, 6, 0, 0, 0],
        ]
        .concat();
        png_chunk(&mut png, b"IHDR", &ihdr);
        png_chunk(&mut png, b"IDAT", &[0x78, 0x01]);
        png_chunk(&mut png, b"IEND", &[]);
        let err = decode_scaled(&png, 320, DEFAULT_MAX_DECODED_BYTES).unwrap_err();
        assert_eq!(
            err,
            DecodeError::OverBudget {
                width: 10_000,
                height: 10_000,
                needed: 800_000_000,
                budget: DEFAULT_MAX_DECODED_BYTES
            }
        );
        assert!(err.to_string().contains("800000000 bytes"));
    }

    #[test]
    fn interlaced_pngs_decode_within_the_budget() {
        let image = gradient(200, 120);
        let png = interlaced_png(&image);
        let whole = decode_scaled(&png, 320, DEFAULT_MAX_DECODED_BYTES).unwrap();
        assert_eq!(whole, image, "every pass lands where Adam7 puts it");
        let small = decode_scaled(&png, 100, DEFAULT_MAX_DECODED_BYTES).unwrap();
        assert_eq!(small.dimensions(), (100, 60));
        let plain = encode(
            &DynamicImage::ImageRgb8(image.clone()),
            image::ImageFormat::Png,
        );
        let plain_small = decode_scaled(&plain, 100, DEFAULT_MAX_DECODED_BYTES).unwrap();
        assert_eq!(
            small, plain_small,
            "the same blocks averaged, in whatever order rows come"
        );
        assert!(matches!(
            decode_scaled(&png, 100, 1000),
            Err(DecodeError::OverBudget { needed: 72_000, .. })
        ));
    }

    #[test]
    fn a_region_outside_the_image_is_an_error_not_a_panic() {
        let image = RgbImage::new(8, 4);
        let outside = Region {
            left: 6,
            top: 0,
            width: 4,
            height: 4,
        };
        assert!(resize(&image, outside, 2, 2).is_err());
        let resized = resize(&image, Region::whole(&image), 4, 2).unwrap();
        assert_eq!(resized.dimensions(), (4, 2));
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let jpeg = encode(
            &DynamicImage::ImageRgb8(gradient(300, 200)),
            image::ImageFormat::Jpeg,
        );
        assert!(matches!(
            decode_scaled(&jpeg[..jpeg.len() / 3], 100, DEFAULT_MAX_DECODED_BYTES),
            Err(DecodeError::Corrupt { .. }) | Ok(_)
        ));
        let png = encode(
            &DynamicImage::ImageRgb8(gradient(300, 200)),
            image::ImageFormat::Png,
        );
        assert!(matches!(
            decode_scaled(&png[..png.len() / 2], 100, DEFAULT_MAX_DECODED_BYTES),
            Err(DecodeError::Corrupt { format: "PNG", .. })
        ));
        assert_eq!(
            decode_scaled(b"GIF89a", 100, 1000),
            Err(DecodeError::Unsupported)
        );
    }

    /// An Adam7-interlaced 8-bit RGB PNG, deflated in stored blocks (the png crate writes no
    /// interlaced files).
    fn interlaced_png(image: &RgbImage) -> Vec<u8> {
        let (w, h) = image.dimensions();
        let mut raw = Vec::new();
        for (x0, y0, dx, dy) in [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ] {
            for y in (y0..h).step_by(dy) {
                if x0 >= w {
                    break;
                }
                raw.push(0); // filter: none
                for x in (x0..w).step_by(dx) {
                    raw.extend_from_slice(&image.get_pixel(x, y).0);
                }
            }
        }
        let mut zlib = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
        for (i, block) in blocks.iter().enumerate() {
            zlib.push(u8::from(i + 1 == blocks.len()));
            let len = block.len() as u16;
            zlib.extend_from_slice(&len.to_le_bytes());
            zlib.extend_from_slice(&(!len).to_le_bytes());
            zlib.extend_from_slice(block);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for byte in &raw {
            a = (a + u32::from(*byte)) % 65_521;
            b = (b + a) % 65_521;
        }
        zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
        let chunk = png_chunk;
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let ihdr = [&w.to_be_bytes()[..], &h.to_be_bytes()[..], &[8, 2, 0, 0, 1]].concat();
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &zlib);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    fn png_chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc32(&[kind, data].concat()).to_be_bytes());
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
