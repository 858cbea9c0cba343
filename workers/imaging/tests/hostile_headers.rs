//! Random and mutated image headers at the probe ingest and the API run before anything is
//! decoded: an answer, a rejection with a reason, or a request for more bytes that makes
//! progress, never a panic.
use imgflow_imaging::probe::{check_tail, probe, ImageFormat, Limits, ProbeError};
use proptest::prelude::*;

fn png_header(width: u32, height: u32, depth: u8, colour: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[depth, colour, 0, 0, 0, 0, 0, 0, 0]);
    v
}

fn jpeg_header(width: u16, height: u16, marker: u8, components: u8, app_len: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE1];
    v.extend_from_slice(&app_len.max(2).to_be_bytes());
    v.extend(std::iter::repeat_n(0u8, usize::from(app_len.max(2)) - 2));
    v.extend_from_slice(&[0xFF, marker, 0x00, 0x11, 0x08]);
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&width.to_be_bytes());
    v.push(components);
    v.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    v
}

fn check(head: &[u8]) {
    match probe(head) {
        Ok(info) => {
            // The limits check is total too, and refuses anything over the decode budget.
            let verdict = Limits::default().check_dimensions(&info);
            if info.decoded_bytes > Limits::default().max_decoded_bytes {
                assert!(verdict.is_err());
            }
        }
        Err(ProbeError::NeedMore(n)) => assert!(n > head.len(), "asks for more: {n}"),
        Err(ProbeError::Rejected(reason)) => assert!(!reason.is_empty()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_bytes(head in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&head);
        let _ = check_tail(ImageFormat::Jpeg, &head);
        let _ = check_tail(ImageFormat::Png, &head);
    }

    #[test]
    fn pngs_declaring_anything(width in any::<u32>(), height in any::<u32>(), depth in any::<u8>(), colour in any::<u8>(), cut in 0usize..40) {
        let header = png_header(width, height, depth, colour);
        check(&header[..cut.min(header.len())]);
        check(&header);
    }

    #[test]
    fn jpegs_declaring_anything(
        width in any::<u16>(), height in any::<u16>(), marker in 0xC0u8..=0xCF,
        components in any::<u8>(), app_len in any::<u16>(), cut in 0usize..70_000,
    ) {
        let header = jpeg_header(width, height, marker, components, app_len);
        check(&header[..cut.min(header.len())]);
        check(&header);
    }

    #[test]
    fn mutated_headers(
        seed in prop_oneof![Just(png_header(640, 480, 8, 2)), Just(jpeg_header(640, 480, 0xC0, 3, 100))],
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..12),
    ) {
        let mut head = seed;
        for (at, value) in edits {
            let len = head.len();
            head[at % len] = value;
        }
        check(&head);
    }
}

/// What a PNG of this colour type and depth decodes to, per pixel, computed here from the
/// PNG specification (palette images expand to RGBA), not from the probe.
fn png_pixel_bytes(colour: u8, depth: u8) -> u64 {
    let channels = match colour {
        0 => 1,
        2 => 3,
        3 | 6 => 4,
        4 => 2,
        _ => unreachable!(),
    };
    channels * if depth == 16 { 2 } else { 1 }
}

fn refused(head: &[u8]) -> bool {
    match probe(head) {
        Ok(info) => Limits::default().check_dimensions(&info).is_err(),
        Err(ProbeError::Rejected(_)) => true,
        Err(ProbeError::NeedMore(n)) => panic!("a whole header asks for {n} bytes"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Every valid PNG header is refused exactly when its decoded size is over the budget
    /// or a side is out of range, and accepted otherwise.
    #[test]
    fn pngs_over_the_decode_budget_are_always_refused(
        width in 1u32..=20_000,
        height in 1u32..=20_000,
        (colour, depth) in prop_oneof![
            (Just(0u8), prop_oneof![Just(1u8), Just(2), Just(4), Just(8), Just(16)]),
            (Just(2u8), prop_oneof![Just(8u8), Just(16)]),
            (Just(3u8), prop_oneof![Just(1u8), Just(2), Just(4), Just(8)]),
            (Just(4u8), prop_oneof![Just(8u8), Just(16)]),
            (Just(6u8), prop_oneof![Just(8u8), Just(16)]),
        ],
    ) {
        let limits = Limits::default();
        let needed = u64::from(width) * u64::from(height) * png_pixel_bytes(colour, depth);
        let sides = |s: u32| (limits.min_side..=limits.max_side).contains(&s);
        let allowed = needed <= limits.max_decoded_bytes && sides(width) && sides(height);
        prop_assert_eq!(
            !refused(&png_header(width, height, depth, colour)),
            allowed,
            "{}x{} colour {} depth {}: {} bytes",
            width,
            height,
            colour,
            depth,
            needed
        );
    }

    /// The same for baseline (one byte a sample) and progressive or 12-bit JPEGs (two bytes:
    /// their coefficients are held until the end), with 1, 3 or 4 components.
    #[test]
    fn jpegs_over_the_decode_budget_are_always_refused(
        width in 1u16..=u16::MAX,
        height in 1u16..=u16::MAX,
        marker in prop_oneof![Just(0xC0u8), Just(0xC1), Just(0xC2)],
        components in prop_oneof![Just(1u8), Just(3), Just(4)],
    ) {
        let limits = Limits::default();
        let per_sample = if marker == 0xC2 { 2 } else { 1 };
        let needed = u64::from(width) * u64::from(height) * u64::from(components) * per_sample;
        let sides = |s: u16| (limits.min_side..=limits.max_side).contains(&u32::from(s));
        let allowed = needed <= limits.max_decoded_bytes && sides(width) && sides(height);
        let header = jpeg_header(width, height, marker, components, 2);
        prop_assert_eq!(!refused(&header), allowed, "{}x{} SOF{:X} {} components", width, height, marker, components);
    }
}
