//! Format and dimensions from a file's first bytes, and truncation from its last bytes,
//! without decoding the image: ingest reads a few KiB of each object instead of all of it.
//!
//! Limits follow Rekognition DetectLabels for S3 objects: JPEG or PNG, at most 15 MB, each
//! side 80–10,000 px. <https://docs.aws.amazon.com/rekognition/latest/dg/limits.html>

/// Bytes ingest reads first; enough for the header of almost every JPEG (EXIF included).
pub const HEAD_BYTES: u64 = 64 * 1024;
/// Most bytes ingest will read looking for a JPEG frame header behind large metadata.
pub const MAX_HEADER_BYTES: u64 = 1024 * 1024;
/// Bytes ingest reads from the end to find the end-of-image marker.
pub const TAIL_BYTES: u64 = 32;

/// Supported formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG (JFIF, EXIF).
    Jpeg,
    /// PNG.
    Png,
}

impl ImageFormat {
    /// The MIME type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    /// A file extension for uploads.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format, from magic bytes.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes a decoder holds for it: width × height × channels × bytes per sample (two for
    /// 16-bit samples and for a progressive JPEG's coefficients; palette PNGs count as RGBA).
    pub decoded_bytes: u64,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The header continues past the bytes given; read at least this many and probe again.
    #[error("image header continues past byte {0}")]
    NeedMore(usize),
    /// Not an image imgflow can label, or a damaged one; the text is the user-facing reason.
    #[error("{0}")]
    Rejected(String),
}

/// Size and dimension limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file in bytes.
    pub max_bytes: u64,
    /// Shortest side in pixels.
    pub min_side: u32,
    /// Longest side in pixels.
    pub max_side: u32,
    /// Most bytes a decoder may hold for one image (see [`ImageInfo::decoded_bytes`]).
    pub max_decoded_bytes: u64,
}

impl Default for Limits {
    /// Rekognition's limits for images in S3.
    fn default() -> Self {
        Self {
            max_bytes: 15 * 1024 * 1024,
            min_side: 80,
            max_side: 10_000,
            // What an 8-bit RGBA image at the largest size decodes to: the thumbnail and the
            // local detector decode under this budget, so anything larger is refused here.
            max_decoded_bytes: crate::DEFAULT_MAX_DECODED_BYTES,
        }
    }
}

/// Where [`Limits::check`] stands with the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// An image within every limit.
    Valid(ImageInfo),
    /// Read the first `n` bytes (more than given) and check again.
    NeedHead(usize),
    /// The header is fine; read the last [`TAIL_BYTES`] and check again.
    NeedTail,
    /// Not an image imgflow can label; `info` when the header was readable.
    Invalid {
        /// What the header said, if it was read.
        info: Option<ImageInfo>,
        /// The user-facing reason.
        reason: String,
    },
}

impl Limits {
    /// The one image check, shared by ingest (which reads objects by ranges, so asks for
    /// more when told to) and the upload route (which has the whole file): size, header,
    /// dimensions and decoded size, then the end of the file. `head` is the file's first
    /// bytes, `tail` its last ones when read; a `head` of `size` bytes is the whole file.
    pub fn check(&self, size: u64, head: &[u8], tail: Option<&[u8]>) -> Check {
        let invalid = |info, reason| Check::Invalid { info, reason };
        if let Err(reason) = self.check_size(size) {
            return invalid(None, reason);
        }
        let whole = head.len() as u64 >= size;
        let info = match probe(head) {
            Ok(info) => info,
            Err(ProbeError::Rejected(reason)) => return invalid(None, reason),
            Err(ProbeError::NeedMore(n)) if whole || n as u64 > size => {
                let reason = "image is truncated: the file ends inside its header".to_owned();
                return invalid(None, reason);
            }
            Err(ProbeError::NeedMore(_)) if head.len() as u64 >= MAX_HEADER_BYTES => {
                let reason = format!("image header is larger than {MAX_HEADER_BYTES} bytes");
                return invalid(None, reason);
            }
            Err(ProbeError::NeedMore(n)) => {
                let want = (n as u64)
                    .max(head.len() as u64 * 2)
                    .min(MAX_HEADER_BYTES)
                    .min(size);
                return Check::NeedHead(want as usize);
            }
        };
        if let Err(reason) = self.check_dimensions(&info) {
            return invalid(Some(info), reason);
        }
        let tail = match tail {
            Some(tail) => tail,
            None if whole => &head[head.len().saturating_sub(TAIL_BYTES as usize)..],
            None => return Check::NeedTail,
        };
        match check_tail(info.format, tail) {
            Ok(()) => Check::Valid(info),
            Err(reason) => invalid(Some(info), reason),
        }
    }

    /// Checks the file size before anything is read.
    pub fn check_size(&self, size: u64) -> Result<(), String> {
        if size == 0 {
            return Err("file is empty".into());
        }
        if size > self.max_bytes {
            return Err(format!(
                "file is {} bytes; the limit is {} bytes ({} MB)",
                size,
                self.max_bytes,
                self.max_bytes / (1024 * 1024)
            ));
        }
        Ok(())
    }

    /// Checks the dimensions and the decoded size from the header.
    pub fn check_dimensions(&self, info: &ImageInfo) -> Result<(), String> {
        let ok = |side: u32| (self.min_side..=self.max_side).contains(&side);
        if !(ok(info.width) && ok(info.height)) {
            return Err(format!(
                "image is {}×{} px; each side must be {}–{} px",
                info.width, info.height, self.min_side, self.max_side
            ));
        }
        if info.decoded_bytes > self.max_decoded_bytes {
            return Err(format!(
                "image is {}×{} px and would decode to {} MB; the limit is {} MB (use 8-bit colour or fewer pixels)",
                info.width,
                info.height,
                info.decoded_bytes / 1_000_000,
                self.max_decoded_bytes / 1_000_000
            ));
        }
        Ok(())
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The format the first bytes of a file announce (PNG or JPEG), whatever its name says.
pub fn sniff(head: &[u8]) -> Option<ImageFormat> {
    if head.starts_with(PNG_SIGNATURE) {
        Some(ImageFormat::Png)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else {
        None
    }
}

/// Reads format and dimensions from the first bytes of a file.
pub fn probe(head: &[u8]) -> Result<ImageInfo, ProbeError> {
    if head.starts_with(PNG_SIGNATURE) {
        return probe_png(head);
    }
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return probe_jpeg(head);
    }
    Err(ProbeError::Rejected(unsupported_reason(head)))
}

fn probe_png(head: &[u8]) -> Result<ImageInfo, ProbeError> {
    // The first chunk must be IHDR: length (4) "IHDR" width (4) height (4) depth (1) colour (1).
    if head.len() < 26 {
        return Err(ProbeError::NeedMore(26));
    }
    if &head[12..16] != b"IHDR" {
        return Err(ProbeError::Rejected(
            "corrupt PNG: first chunk is not IHDR".into(),
        ));
    }
    let width = u32::from_be_bytes([head[16], head[17], head[18], head[19]]);
    let height = u32::from_be_bytes([head[20], head[21], head[22], head[23]]);
    let per_sample = if head[24] == 16 { 2 } else { 1 };
    let channels = match head[25] {
        0 => 1,
        2 => 3,
        4 => 2,
        // Palette images (3) expand to RGBA when decoded; RGBA is 6.
        _ => 4,
    };
    Ok(ImageInfo {
        format: ImageFormat::Png,
        width,
        height,
        decoded_bytes: crate::decoded_bytes(width, height, channels.max(1), per_sample),
    })
}

fn probe_jpeg(head: &[u8]) -> Result<ImageInfo, ProbeError> {
    let mut at = 2;
    loop {
        // Markers are 0xFF, optional 0xFF fill bytes, then the marker code.
        while at < head.len() && head[at] == 0xFF && head.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if at + 4 > head.len() {
            return Err(ProbeError::NeedMore(at + 4));
        }
        if head[at] != 0xFF {
            return Err(ProbeError::Rejected(format!(
                "corrupt JPEG: expected a marker at byte {at}"
            )));
        }
        let marker = head[at + 1];
        match marker {
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => {
                at += 2;
                continue;
            }
            0xD9 | 0xDA => {
                return Err(ProbeError::Rejected(
                    "corrupt JPEG: no frame header before the image data".into(),
                ))
            }
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([head[at + 2], head[at + 3]]));
        if length < 2 {
            return Err(ProbeError::Rejected(format!(
                "corrupt JPEG: segment length {length} at byte {at}"
            )));
        }
        // Start-of-frame markers (all but DHT C4, JPG C8, DAC CC): precision, height, width.
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            if at + 10 > head.len() {
                return Err(ProbeError::NeedMore(at + 10));
            }
            let precision = head[at + 4];
            let height = u32::from(u16::from_be_bytes([head[at + 5], head[at + 6]]));
            let width = u32::from(u16::from_be_bytes([head[at + 7], head[at + 8]]));
            let channels = u32::from(head[at + 9]);
            // Progressive frames (SOF2, 6, 10, 14) keep two-byte coefficients until the end.
            let progressive = marker & 0x03 == 0x02;
            let per_sample = if precision > 8 || progressive { 2 } else { 1 };
            return Ok(ImageInfo {
                format: ImageFormat::Jpeg,
                width,
                height,
                decoded_bytes: crate::decoded_bytes(width, height, channels.max(1), per_sample),
            });
        }
        at += 2 + length;
    }
}

/// Checks that the file ends where its format says it ends: a truncated upload passes the
/// header check but fails the detector, so ingest rejects it up front.
pub fn check_tail(format: ImageFormat, tail: &[u8]) -> Result<(), String> {
    let (marker, what): (&[u8], _) = match format {
        ImageFormat::Jpeg => (&[0xFF, 0xD9], "JPEG is truncated: no end-of-image marker"),
        ImageFormat::Png => (b"IEND", "PNG is truncated: no IEND chunk"),
    };
    if tail.windows(marker.len()).any(|w| w == marker) {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// Names what a rejected file is, so the reason helps the person who uploaded it.
fn unsupported_reason(head: &[u8]) -> String {
    let known: &[(&[u8], &str)] = &[
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"%PDF", "PDF"),
    ];
    if let Some((_, name)) = known.iter().find(|(magic, _)| head.starts_with(magic)) {
        return format!("{name} is not supported; upload a JPEG or PNG");
    }
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "WebP is not supported; upload a JPEG or PNG".into();
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return "HEIC/AVIF is not supported; upload a JPEG or PNG".into();
    }
    if head.is_empty() {
        return "file is empty".into();
    }
    let printable = head
        .iter()
        .take(512)
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if printable {
        "not an image: the file is text; upload a JPEG or PNG".into()
    } else {
        "not a JPEG or PNG: unrecognised content".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut v = PNG_SIGNATURE.to_vec();
        v.extend_from_slice(&13u32.to_be_bytes());
        v.extend_from_slice(b"IHDR");
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    fn jpeg_header(width: u16, height: u16, app_len: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
        v.extend_from_slice(&app_len.to_be_bytes());
        v.extend(std::iter::repeat_n(0u8, usize::from(app_len) - 2));
        v.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        v
    }

    #[test]
    fn png_dimensions_come_from_ihdr() {
        let info = probe(&png_header(451, 300)).unwrap();
        assert_eq!(
            (info.format, info.width, info.height),
            (ImageFormat::Png, 451, 300)
        );
    }

    #[test]
    fn jpeg_dimensions_come_from_the_frame_header_behind_metadata() {
        let info = probe(&jpeg_header(640, 480, 1000)).unwrap();
        assert_eq!(
            (info.format, info.width, info.height),
            (ImageFormat::Jpeg, 640, 480)
        );
    }

    #[test]
    fn a_header_cut_short_asks_for_more_bytes() {
        let full = jpeg_header(640, 480, 5000);
        match probe(&full[..1000]) {
            Err(ProbeError::NeedMore(n)) => assert!(n > 1000 && n <= full.len()),
            other => panic!("expected NeedMore, got {other:?}"),
        }
        assert_eq!(
            probe(&png_header(1, 1)[..10]),
            Err(ProbeError::NeedMore(26))
        );
    }

    #[test]
    fn other_files_are_rejected_with_a_reason_naming_them() {
        let reason = |bytes: &[u8]| match probe(bytes) {
            Err(ProbeError::Rejected(r)) => r,
            other => panic!("expected a rejection, got {other:?}"),
        };
        assert!(reason(b"hello, this is text\n").contains("text"));
        assert!(reason(b"GIF89a\x01\x00").contains("GIF"));
        assert!(reason(b"").contains("empty"));
        assert!(reason(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 4, 0, 0]).contains("no frame header"));
        assert!(reason(&[0, 1, 2, 3, 200, 201]).contains("unrecognised"));
    }

    #[test]
    fn limits_follow_rekognition() {
        let limits = Limits::default();
        let info = |width: u32, height: u32| ImageInfo {
            format: ImageFormat::Png,
            width,
            height,
            decoded_bytes: u64::from(width) * u64::from(height) * 4,
        };
        assert!(limits.check_dimensions(&info(80, 10_000)).is_ok());
        assert!(limits
            .check_dimensions(&info(12_000, 50))
            .unwrap_err()
            .contains("12000×50"));
        assert!(limits.check_dimensions(&info(79, 100)).is_err());
        assert!(limits.check_size(15 * 1024 * 1024).is_ok());
        assert!(limits.check_size(15 * 1024 * 1024 + 1).is_err());
        assert_eq!(limits.check_size(0).unwrap_err(), "file is empty");
    }

    #[test]
    fn deep_colour_at_the_largest_size_is_over_the_decode_limit() {
        let mut header = png_header(10_000, 10_000);
        assert_eq!(probe(&header).unwrap().decoded_bytes, 300_000_000);
        header[24..26].copy_from_slice(&[16, 6]); // 16-bit RGBA
        let info = probe(&header).unwrap();
        assert_eq!(info.decoded_bytes, 800_000_000);
        let reason = Limits::default().check_dimensions(&info).unwrap_err();
        assert!(
            reason.contains("would decode to 800 MB; the limit is 400 MB"),
            "{reason}"
        );
        header[24..26].copy_from_slice(&[8, 6]); // 8-bit RGBA: exactly the limit
        assert!(Limits::default()
            .check_dimensions(&probe(&header).unwrap())
            .is_ok());
        let mut progressive = jpeg_header(10_000, 10_000, 100);
        let sof = progressive
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .unwrap();
        progressive[sof + 1] = 0xC2;
        assert_eq!(probe(&progressive).unwrap().decoded_bytes, 600_000_000);
    }

    #[test]
    fn truncation_is_found_from_the_tail() {
        assert!(check_tail(ImageFormat::Jpeg, &[1, 2, 0xFF, 0xD9]).is_ok());
        assert!(check_tail(ImageFormat::Jpeg, &[1, 2, 3, 4]).is_err());
        assert!(check_tail(ImageFormat::Png, b"\0\0\0\0IEND\xAE\x42\x60\x82").is_ok());
        assert!(check_tail(ImageFormat::Png, b"IDAT....").is_err());
    }
}
