//! EXIF metadata from an image's first bytes (JPEG APP1, PNG eXIf): when and with what it was
//! taken, and where. GPS is personal data, so it is kept only when asked.
//!
//! The input is whatever ingest already read (at most a few tens of KiB), so parsing is bounded
//! by it; every value is cut to [`MAX_VALUE_CHARS`] printable characters because the bytes are
//! the uploader's.
use std::collections::BTreeMap;

use ::exif::{In, Rational, Reader, Tag, Value};

/// Longest value kept, in characters.
pub const MAX_VALUE_CHARS: usize = 128;

/// The tags kept, by the name they get in the item's `exif` map.
const KEPT: [(&str, Tag); 9] = [
    ("taken_at", Tag::DateTimeOriginal),
    ("camera_make", Tag::Make),
    ("camera_model", Tag::Model),
    ("lens", Tag::LensModel),
    ("orientation", Tag::Orientation),
    ("exposure_time", Tag::ExposureTime),
    ("f_number", Tag::FNumber),
    ("iso", Tag::PhotographicSensitivity),
    ("focal_length_mm", Tag::FocalLength),
];

/// Why no metadata came out of the bytes.
#[derive(Debug, thiserror::Error)]
#[error("unreadable EXIF: {0}")]
pub struct ExifError(#[from] ::exif::Error);

/// Where an image's EXIF is, as far as its first bytes tell.
#[derive(Debug, PartialEq, Eq)]
enum Located<'a> {
    /// The TIFF payload (a JPEG's APP1 after `Exif\0\0`, a PNG's eXIf data).
    Exif(&'a [u8]),
    /// None before the image data, or the bytes end first: no EXIF to read, nothing wrong.
    Absent,
    /// The container's own structure is broken where EXIF would be.
    Corrupt(&'static str),
}

/// Finds the EXIF payload in `head` by walking the JPEG segments (up to the scan) or the PNG
/// chunks (up to the end, as far as `head` goes). The EXIF parser's own walk reads to the end of the file and
/// calls a head that ends early "broken", which every image without EXIF would then be.
fn locate(head: &[u8]) -> Located<'_> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if let Some(mut rest) = head.strip_prefix(PNG) {
        while rest.len() >= 8 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = &rest[4..8];
            // (eXIf may follow the image data in some writers: walk on to IEND.)
            if kind == b"IEND" {
                return Located::Absent;
            }
            let Some(data) = rest.get(8..8usize.saturating_add(len)) else {
                return Located::Absent;
            };
            if kind == b"eXIf" {
                return Located::Exif(data);
            }
            rest = rest.get(8 + len + 4..).unwrap_or_default();
        }
        return Located::Absent;
    }
    if let Some(mut rest) = head.strip_prefix(&[0xFF, 0xD8]) {
        loop {
            // Stray bytes between segments are skipped to the next marker, as decoders do.
            if rest.first().is_some_and(|&b| b != 0xFF) {
                match rest.iter().position(|&b| b == 0xFF) {
                    Some(at) => rest = &rest[at..],
                    None => return Located::Absent,
                }
            }
            // Fill bytes (0xFF) may precede a marker.
            while rest.len() >= 2 && rest[0] == 0xFF && rest[1] == 0xFF {
                rest = &rest[1..];
            }
            let [0xFF, marker, ..] = *rest else {
                return Located::Absent;
            };
            match marker {
                // Start of scan, end of image: EXIF would have come before.
                0xDA | 0xD9 => return Located::Absent,
                // Stand-alone markers (a stray start of image among them).
                0x01 | 0xD0..=0xD8 => {
                    rest = &rest[2..];
                    continue;
                }
                _ => {}
            }
            let Some(&[high, low]) = rest.get(2..4) else {
                return Located::Absent;
            };
            let len = u16::from_be_bytes([high, low]) as usize;
            if len < 2 {
                return Located::Corrupt("JPEG segment length under 2");
            }
            let Some(segment) = rest.get(4..2 + len) else {
                return Located::Absent;
            };
            if marker == 0xE1 {
                if let Some(tiff) = segment.strip_prefix(b"Exif\0\0") {
                    return Located::Exif(tiff);
                }
            }
            rest = &rest[2 + len..];
        }
    }
    Located::Absent
}

/// The kept tags found in `head` (an image's first bytes), GPS (`gps_latitude`,
/// `gps_longitude` in signed decimal degrees, `gps_altitude_m`) only when `keep_gps`.
/// `Ok` and empty when the image carries no EXIF, or none within `head`; an error only for
/// EXIF (or the structure around it) that is really broken.
pub fn read(head: &[u8], keep_gps: bool) -> Result<BTreeMap<String, String>, ExifError> {
    let payload = match locate(head) {
        Located::Exif(payload) => payload,
        Located::Absent => return Ok(BTreeMap::new()),
        Located::Corrupt(why) => return Err(::exif::Error::InvalidFormat(why).into()),
    };
    let exif = Reader::new().read_raw(payload.to_vec())?;
    let field = |tag| exif.get_field(tag, In::PRIMARY).map(|f| &f.value);
    let mut out = BTreeMap::new();
    for (name, tag) in KEPT {
        let Some(value) = field(tag) else { continue };
        let text = match tag {
            Tag::DateTimeOriginal => taken_at(value, field(Tag::OffsetTimeOriginal)),
            Tag::ExposureTime => first_rational(value).map(|r| {
                if r.num != 0 && r.num < r.denom {
                    format!("1/{}", decimal(r.denom as f64 / r.num as f64))
                } else {
                    decimal(r.to_f64())
                }
            }),
            Tag::FNumber | Tag::FocalLength => first_rational(value).map(|r| decimal(r.to_f64())),
            _ => plain(value),
        };
        if let Some(text) = text.map(|t| printable(&t)).filter(|t| !t.is_empty()) {
            out.insert(name.to_owned(), text);
        }
    }
    if keep_gps {
        let coordinate = |value_tag, ref_tag, negative: &[u8]| {
            let degrees = degrees(field(value_tag)?)?;
            let sign = match field(ref_tag) {
                Some(Value::Ascii(v)) if v.first().is_some_and(|r| r.as_slice() == negative) => {
                    -1.0
                }
                _ => 1.0,
            };
            Some(format!("{:.6}", sign * degrees))
        };
        if let Some(lat) = coordinate(Tag::GPSLatitude, Tag::GPSLatitudeRef, b"S") {
            out.insert("gps_latitude".into(), lat);
        }
        if let Some(lon) = coordinate(Tag::GPSLongitude, Tag::GPSLongitudeRef, b"W") {
            out.insert("gps_longitude".into(), lon);
        }
        if let Some(altitude) = field(Tag::GPSAltitude).and_then(first_rational) {
            let below_sea =
                matches!(field(Tag::GPSAltitudeRef), Some(Value::Byte(b)) if b.first() == Some(&1));
            let sign = if below_sea { -1.0 } else { 1.0 };
            out.insert("gps_altitude_m".into(), decimal(sign * altitude.to_f64()));
        }
    }
    Ok(out)
}

/// `2019:07:04 12:34:56` (+ `+02:00` when the offset is recorded) as RFC 3339-like text.
fn taken_at(value: &Value, offset: Option<&Value>) -> Option<String> {
    let Value::Ascii(parts) = value else {
        return None;
    };
    let dt = ::exif::DateTime::from_ascii(parts.first()?).ok()?;
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
    );
    if let Some(Value::Ascii(offset)) = offset {
        let offset = String::from_utf8_lossy(offset.first()?.as_slice()).into_owned();
        if offset.len() == 6 && (offset.starts_with('+') || offset.starts_with('-')) {
            text.push_str(&offset);
        }
    }
    Some(text)
}

fn plain(value: &Value) -> Option<String> {
    match value {
        Value::Ascii(parts) => Some(String::from_utf8_lossy(parts.first()?).trim().to_owned()),
        other => other.get_uint(0).map(|n| n.to_string()),
    }
}

fn first_rational(value: &Value) -> Option<Rational> {
    match value {
        Value::Rational(v) => v.first().copied().filter(|r| r.denom != 0),
        _ => None,
    }
}

/// Degrees, minutes, seconds → decimal degrees.
fn degrees(value: &Value) -> Option<f64> {
    let Value::Rational(dms) = value else {
        return None;
    };
    if dms.len() < 3 || dms.iter().any(|r| r.denom == 0) {
        return None;
    }
    let degrees = dms[0].to_f64() + dms[1].to_f64() / 60.0 + dms[2].to_f64() / 3600.0;
    (0.0..=180.0).contains(&degrees).then_some(degrees)
}

/// At most 4 decimals, without trailing zeros: `2.8`, `50`, `0.0125`.
fn decimal(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Printable characters only, at most [`MAX_VALUE_CHARS`].
fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_VALUE_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Cursor;

    use ::exif::{experimental::Writer, Field};

    use super::*;

    fn ascii(tag: Tag, text: &str) -> Field {
        Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![text.as_bytes().to_vec()]),
        }
    }

    fn rationals(tag: Tag, values: &[(u32, u32)]) -> Field {
        Field {
            tag,
            ifd_num: In::PRIMARY,
            value: Value::Rational(values.iter().map(|&(n, d)| (n, d).into()).collect()),
        }
    }

    /// A camera's EXIF block (TIFF, little-endian) with a GPS position in London.
    pub(crate) fn camera_exif() -> Vec<u8> {
        let fields = vec![
            ascii(Tag::Make, "Canon"),
            ascii(Tag::Model, "Canon EOS 5D\u{7}"),
            ascii(Tag::LensModel, "EF24-70mm f/2.8L"),
            Field {
                tag: Tag::Orientation,
                ifd_num: In::PRIMARY,
                value: Value::Short(vec![6]),
            },
            ascii(Tag::DateTimeOriginal, "2019:07:04 12:34:56"),
            ascii(Tag::OffsetTimeOriginal, "+01:00"),
            rationals(Tag::ExposureTime, &[(1, 125)]),
            rationals(Tag::FNumber, &[(28, 10)]),
            rationals(Tag::FocalLength, &[(50, 1)]),
            Field {
                tag: Tag::PhotographicSensitivity,
                ifd_num: In::PRIMARY,
                value: Value::Short(vec![400]),
            },
            ascii(Tag::GPSLatitudeRef, "N"),
            rationals(Tag::GPSLatitude, &[(51, 1), (30, 1), (0, 1)]),
            ascii(Tag::GPSLongitudeRef, "W"),
            rationals(Tag::GPSLongitude, &[(0, 1), (7, 1), (3960, 100)]),
            rationals(Tag::GPSAltitude, &[(35, 1)]),
        ];
        let mut writer = Writer::new();
        for field in &fields {
            writer.push_field(field);
        }
        let mut out = Cursor::new(Vec::new());
        writer.write(&mut out, true).unwrap();
        out.into_inner()
    }

    /// `jpeg` (a complete JPEG) with `tiff` inserted as its APP1 Exif segment.
    pub(crate) fn with_app1(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(tiff);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn small_jpeg() -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::new(8, 8)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn camera_fields_are_read_and_gps_is_dropped_unless_kept() {
        let jpeg = with_app1(&small_jpeg(), &camera_exif());
        let exif = read(&jpeg, false).unwrap();
        let get = |k: &str| exif.get(k).map(String::as_str);
        assert_eq!(get("camera_make"), Some("Canon"));
        assert_eq!(
            get("camera_model"),
            Some("Canon EOS 5D"),
            "control bytes dropped"
        );
        assert_eq!(get("lens"), Some("EF24-70mm f/2.8L"));
        assert_eq!(get("orientation"), Some("6"));
        assert_eq!(get("taken_at"), Some("2019-07-04T12:34:56+01:00"));
        assert_eq!(get("exposure_time"), Some("1/125"));
        assert_eq!(get("f_number"), Some("2.8"));
        assert_eq!(get("focal_length_mm"), Some("50"));
        assert_eq!(get("iso"), Some("400"));
        assert!(exif.keys().all(|k| !k.starts_with("gps")), "{exif:?}");

        let exif = read(&jpeg, true).unwrap();
        assert_eq!(exif["gps_latitude"], "51.500000");
        assert_eq!(exif["gps_longitude"], "-0.127667");
        assert_eq!(exif["gps_altitude_m"], "35");
    }

    #[test]
    fn no_exif_is_empty_and_garbage_is_an_error_not_a_panic() {
        assert!(read(&small_jpeg(), true).unwrap().is_empty());
        let broken = with_app1(&small_jpeg(), b"II\x2a\x00\xff\xff\xff\x7f");
        assert!(read(&broken, true).is_err());
        let truncated = &with_app1(&small_jpeg(), &camera_exif())[..40];
        let _ = read(truncated, true);
    }

    fn small_png() -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::new(8, 8)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    /// `png` with `tiff` as an eXIf chunk right after the header chunk.
    fn with_exif_chunk(png: &[u8], tiff: &[u8]) -> Vec<u8> {
        let ihdr_end = 8 + 8 + 13 + 4;
        let mut out = png[..ihdr_end].to_vec();
        out.extend_from_slice(&(tiff.len() as u32).to_be_bytes());
        out.extend_from_slice(b"eXIf");
        out.extend_from_slice(tiff);
        out.extend_from_slice(&[0, 0, 0, 0]); // The CRC, which nothing here checks.
        out.extend_from_slice(&png[ihdr_end..]);
        out
    }

    /// Ingest reads only an image's first bytes: a head that ends before any EXIF (every PNG
    /// and JPEG without one, cut anywhere) is "no EXIF", not an error to log.
    #[test]
    fn a_head_that_ends_before_any_exif_is_no_exif_not_an_error() {
        for image in [small_jpeg(), small_png()] {
            for cut in 0..=image.len() {
                assert_eq!(
                    read(&image[..cut], true).unwrap(),
                    BTreeMap::new(),
                    "cut at {cut}"
                );
            }
        }
        // EXIF within the head is read from a PNG too; cut inside it, it is simply not there.
        let png = with_exif_chunk(&small_png(), &camera_exif());
        assert_eq!(read(&png, false).unwrap()["camera_make"], "Canon");
        let inside = 8 + 25 + 8 + 10;
        assert!(read(&png[..inside], false).unwrap().is_empty());
        // Stray bytes and fill bytes before the Exif segment are skipped, as decoders do.
        let jpeg = with_app1(&small_jpeg(), &camera_exif());
        let mut stray = vec![0xFF, 0xD8, 0x00, 0x13, 0xFF, 0xFF];
        stray.extend_from_slice(&jpeg[2..]);
        assert_eq!(read(&stray, false).unwrap()["camera_make"], "Canon");
        // Structure that is really broken is still an error.
        let mut bad = small_jpeg();
        bad.splice(2..2, [0xFF, 0xE1, 0x00, 0x01]);
        assert!(read(&bad, false).is_err());
    }

    #[test]
    fn long_values_are_cut() {
        let field = ascii(Tag::Make, &"x".repeat(5000));
        let mut writer = Writer::new();
        writer.push_field(&field);
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, true).unwrap();
        let exif = read(&with_app1(&small_jpeg(), &tiff.into_inner()), false).unwrap();
        assert_eq!(exif["camera_make"].len(), MAX_VALUE_CHARS);
    }
}
