//! The motion decoder: small GRAY8 pictures at a low, steady rate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use reallive_encode::motion::GrayDecoder;

#[test]
fn two_seconds_of_640x360_at_30_fps_give_ten_320x180_gray_pictures() {
    let frames = common::encoded(60, 640, 360);
    let decoder = GrayDecoder::start(320, 5).unwrap();
    for f in &frames {
        decoder.push(f);
    }
    let mut pictures = Vec::new();
    while let Some(p) = decoder.pull(Duration::from_secs(3)) {
        pictures.push(p);
        if pictures.len() == 10 {
            break;
        }
    }
    assert!(pictures.len() >= 9, "{} pictures", pictures.len());
    let p = &pictures[0];
    assert_eq!((p.width, p.height), (320, 180));
    assert!(p.data.len() >= (p.stride * (p.height - 1) + p.width) as usize);
    // 5 fps: 200 ms apart.
    let steps: Vec<i64> = pictures
        .windows(2)
        .map(|w| w[1].pts_ms - w[0].pts_ms)
        .collect();
    assert!(steps.iter().all(|s| (190..=210).contains(s)), "{steps:?}");
    // Not a blank picture: the test pattern has structure.
    let distinct = p
        .data
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    assert!(distinct > 10, "{distinct} grey levels");
}

#[test]
fn out_of_range_settings_are_refused() {
    assert!(GrayDecoder::start(8, 5).is_err());
    assert!(GrayDecoder::start(320, 0).is_err());
}
