//! Recognising the container from the first bytes.
//!
//! Symphonia's own probe scans forward through up to a megabyte of junk looking for any marker,
//! so arbitrary bytes sometimes "probe" as MP3 (two bytes `ff fb` are easy to hit by chance).
//! Here the signature must be where the format puts it: at the start, or right after ID3v2
//! tags for the formats that allow them. MPEG audio and ADTS need two frame headers in a row.

use crate::{AudioError, Hint};

/// The container found by [`sniff`]; it decides which symphonia reader opens the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Container {
    Wav,
    Mp4,
    Ogg,
    Flac,
    Mp3,
    /// Raw AAC in ADTS framing (`.aac` files).
    Adts,
}

/// What [`sniff`] found: the container and where its data starts (after any ID3v2 tags).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sniffed {
    pub container: Container,
    pub start: usize,
}

/// How far to look for the first MP3 frame when the file is named or labelled MP3 but does not
/// start with a frame (junk or a damaged tag before the audio).
const MP3_SCAN_LIMIT: usize = 64 * 1024;

pub(crate) fn sniff(bytes: &[u8], hint: &Hint<'_>) -> Result<Sniffed, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::NotAudio(format!("{} is empty", subject(hint))));
    }

    if let Some(found) = sniff_at_start(bytes)? {
        return Ok(found);
    }

    let start = skip_id3v2(bytes);
    let body = &bytes[start..];
    if body.starts_with(b"fLaC") {
        return Ok(Sniffed {
            container: Container::Flac,
            start,
        });
    }
    if let Some(frame) = mpeg_frame(body) {
        if frames_in_a_row(body, 2) {
            return match frame.layer {
                3 => Ok(Sniffed {
                    container: Container::Mp3,
                    start,
                }),
                layer => Err(AudioError::Unsupported(format!(
                    "{} is MPEG audio layer {} (MP{layer}); only layer 3 (MP3) is supported",
                    subject(hint),
                    ["I", "II"][usize::from(layer - 1)],
                ))),
            };
        }
    }
    if adts_frames_in_a_row(body, 2) {
        return Ok(Sniffed {
            container: Container::Adts,
            start,
        });
    }

    if hint_says_mp3(hint) {
        let limit = body.len().min(MP3_SCAN_LIMIT);
        if let Some(offset) = (0..limit).find(|&i| {
            mpeg_frame(&body[i..]).is_some_and(|f| f.layer == 3) && frames_in_a_row(&body[i..], 3)
        }) {
            return Ok(Sniffed {
                container: Container::Mp3,
                start: start + offset,
            });
        }
    }

    if start == bytes.len() {
        return Err(AudioError::NotAudio(format!(
            "{} holds only an ID3 tag and no audio",
            subject(hint)
        )));
    }
    Err(AudioError::NotAudio(format!(
        "{} is not in a format casebridge recognises{}; supported recordings are WAV, MP3, \
         M4A/AAC, Ogg Vorbis and FLAC",
        subject(hint),
        claimed(hint),
    )))
}

/// Signatures that sit at byte 0. `Ok(None)` means "keep looking" (ID3-tagged formats next).
fn sniff_at_start(b: &[u8]) -> Result<Option<Sniffed>, AudioError> {
    let found = |container| {
        Ok(Some(Sniffed {
            container,
            start: 0,
        }))
    };
    let unsupported = |what: &str| Err(AudioError::Unsupported(format!("{what} is not supported")));
    let not_audio = |what: &str| {
        Err(AudioError::NotAudio(format!(
            "this is {what}, not an audio recording"
        )))
    };
    let at = |offset: usize, magic: &[u8]| b.get(offset..offset + magic.len()) == Some(magic);

    if at(0, b"RIFF") {
        return match b.get(8..12) {
            Some(b"WAVE") => found(Container::Wav),
            Some(b"AVI ") => not_audio("an AVI video"),
            Some(b"WEBP") => not_audio("a WebP image"),
            _ => Err(AudioError::NotAudio(
                "this RIFF file is not a WAV recording".to_owned(),
            )),
        };
    }
    if at(0, b"OggS") {
        return found(Container::Ogg);
    }
    if at(0, b"fLaC") {
        return found(Container::Flac);
    }
    if [b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"]
        .iter()
        .any(|atom| at(4, *atom))
    {
        return found(Container::Mp4);
    }

    // Audio we recognise but do not convert.
    if at(0, b"RF64") || at(0, b"BW64") {
        return unsupported("64-bit WAV (RF64/BW64, used for files over 4 GB)");
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return unsupported("AIFF audio");
    }
    if at(0, b"#!AMR") {
        return unsupported("AMR audio (.amr)");
    }
    if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) {
        return unsupported("Matroska/WebM (.mka/.webm)");
    }
    if at(0, &[0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11]) {
        return unsupported("Windows Media audio (WMA/ASF)");
    }
    if at(0, b"caff") {
        return unsupported("Core Audio Format (.caf)");
    }
    if at(0, b".snd") {
        return unsupported("Sun/NeXT audio (.au)");
    }
    if at(0, b"#!SILK") || at(1, b"#!SILK") {
        return unsupported("SILK audio");
    }
    if at(0, b"wvpk") || at(0, b"MAC ") || at(0, b"TTA1") {
        return unsupported("this lossless audio format (WavPack, Monkey's Audio or TTA)");
    }

    // Things that are clearly not audio; naming them helps whoever has to fix the upload.
    if at(0, b"%PDF") {
        return not_audio("a PDF document");
    }
    if at(0, b"\x89PNG") {
        return not_audio("a PNG image");
    }
    if at(0, &[0xff, 0xd8, 0xff]) {
        return not_audio("a JPEG image");
    }
    if at(0, b"GIF8") {
        return not_audio("a GIF image");
    }
    if at(0, b"PK\x03\x04") {
        return not_audio("a ZIP archive (or an Office document)");
    }
    let text = b.trim_ascii_start();
    if text.len() >= 5
        && (text[..5].eq_ignore_ascii_case(b"<!doc") || text[..5].eq_ignore_ascii_case(b"<html"))
    {
        return not_audio(
            "an HTML page (perhaps an error or login page was saved instead of the recording)",
        );
    }
    if text.starts_with(b"{") || text.starts_with(b"<?xml") {
        return not_audio("a text (JSON or XML) document");
    }
    Ok(None)
}

/// The offset after any ID3v2 tags (and zero padding after them), or 0.
fn skip_id3v2(bytes: &[u8]) -> usize {
    let mut pos = 0;
    while let Some(h) = bytes.get(pos..pos + 10) {
        if &h[..3] != b"ID3" || h[3] == 0xff || h[4] == 0xff || h[6..10].iter().any(|&b| b >= 0x80)
        {
            break;
        }
        let size = h[6..10]
            .iter()
            .fold(0usize, |acc, &b| (acc << 7) | usize::from(b));
        let footer = if h[5] & 0x10 != 0 { 10 } else { 0 };
        pos = (pos + 10 + size + footer).min(bytes.len());
    }
    if pos > 0 {
        // Some taggers pad with more zeros than the tag size says.
        let padding = bytes[pos..]
            .iter()
            .take(4096)
            .take_while(|&&b| b == 0)
            .count();
        pos += padding;
    }
    pos
}

fn hint_says_mp3(hint: &Hint<'_>) -> bool {
    let type_says = hint.content_type.is_some_and(|ct| {
        let ct = ct.split(';').next().unwrap_or("").trim();
        ct.eq_ignore_ascii_case("audio/mpeg") || ct.eq_ignore_ascii_case("audio/mp3")
    });
    type_says
        || hint
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("mp3"))
}

/// `'call.wav'`, `the upload (audio/wav)` or `the upload`, for messages.
fn subject(hint: &Hint<'_>) -> String {
    match hint.file_name {
        Some(name) if !name.trim().is_empty() => {
            let name: String = name.trim().chars().take(80).collect();
            format!("'{name}'")
        }
        _ => "the upload".to_owned(),
    }
}

/// ` (it was labelled audio/wav)`, or nothing, for messages.
fn claimed(hint: &Hint<'_>) -> String {
    match hint.content_type {
        Some(ct) if !ct.trim().is_empty() => {
            let ct: String = ct.trim().chars().take(60).collect();
            format!(" (it was labelled {ct})")
        }
        _ => String::new(),
    }
}

/// One MPEG audio frame header (layers I–III, MPEG 1, 2 and 2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MpegFrame {
    /// 1, 2 or 3.
    pub layer: u8,
    pub sample_rate: u32,
    /// Whole frame length in bytes, header included.
    pub len: usize,
}

pub(crate) fn mpeg_frame(b: &[u8]) -> Option<MpegFrame> {
    let h = b.get(..4)?;
    if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
        return None;
    }
    // 0 = MPEG 2.5, 1 = reserved, 2 = MPEG 2, 3 = MPEG 1.
    let version = (h[1] >> 3) & 0b11;
    let layer = match (h[1] >> 1) & 0b11 {
        0b01 => 3u8,
        0b10 => 2,
        0b11 => 1,
        _ => return None,
    };
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 0b11);
    if version == 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None; // reserved values, or free format (which nobody records in)
    }
    let padding = usize::from((h[2] >> 1) & 1);
    let mpeg1 = version == 3;
    const V1: [[u32; 14]; 3] = [
        [
            32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ];
    const V2_L1: [u32; 14] = [
        32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ];
    const V2_L23: [u32; 14] = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let kbps = match (mpeg1, layer) {
        (true, l) => V1[usize::from(l - 1)][bitrate_index - 1],
        (false, 1) => V2_L1[bitrate_index - 1],
        (false, _) => V2_L23[bitrate_index - 1],
    };
    let base_rate = [44_100, 48_000, 32_000][rate_index];
    let sample_rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    let bits = kbps * 1000;
    let len = match layer {
        1 => (12 * bits / sample_rate) as usize * 4 + padding * 4,
        3 if !mpeg1 => (72 * bits / sample_rate) as usize + padding,
        _ => (144 * bits / sample_rate) as usize + padding,
    };
    Some(MpegFrame {
        layer,
        sample_rate,
        len,
    })
}

/// `count` consistent MPEG frames back to back from the start of `b` (fewer is fine when the
/// data ends, so a very short file still counts).
fn frames_in_a_row(b: &[u8], count: usize) -> bool {
    let Some(first) = mpeg_frame(b) else {
        return false;
    };
    let mut pos = first.len;
    for _ in 1..count {
        if pos + 4 > b.len() {
            return true;
        }
        match mpeg_frame(&b[pos..]) {
            // Lengths differ frame to frame (bitrate, padding); version, layer and rate do not.
            Some(f) if f.layer == first.layer && f.sample_rate == first.sample_rate => pos += f.len,
            _ => return false,
        }
    }
    true
}

/// The length of the ADTS frame at the start of `b`, if there is one.
fn adts_frame_len(b: &[u8]) -> Option<usize> {
    let h = b.get(..7)?;
    // 12-bit sync, layer 00; sampling frequency index 0..=12.
    if h[0] != 0xff || h[1] & 0xf6 != 0xf0 || (h[2] >> 2) & 0x0f > 12 {
        return None;
    }
    let len = (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
    (len >= 7).then_some(len)
}

fn adts_frames_in_a_row(b: &[u8], count: usize) -> bool {
    let mut pos = 0;
    for i in 0..count {
        if i > 0 && pos + 7 > b.len() {
            return true;
        }
        match adts_frame_len(&b[pos..]) {
            Some(len) => pos += len,
            None => return false,
        }
    }
    true
}

/// Makes a WAV's sizes agree with the bytes that are really there, so a recording that was cut
/// off (recorder crashed, upload truncated) or written by a streaming recorder (data size left
/// at 0 or 0xFFFFFFFF) converts everything it holds instead of stopping early or reading nothing.
///
/// Only the RIFF and `data` chunk sizes are touched, and only in our private copy.
pub(crate) fn repair_wav_sizes(wav: &mut [u8]) {
    for (at, value) in wav_size_fixes(wav) {
        wav[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
}

/// The size fields [`repair_wav_sizes`] would rewrite, as (offset, new value); empty for a WAV
/// whose sizes are right, so such a file is read in place without a copy.
pub(crate) fn wav_size_fixes(wav: &[u8]) -> Vec<(usize, u32)> {
    let mut fixes = Vec::new();
    let len = wav.len();
    let riff_size = u32::try_from(len.saturating_sub(8)).unwrap_or(u32::MAX);
    if len < 12 {
        return fixes;
    }
    let declared = u32::from_le_bytes([wav[4], wav[5], wav[6], wav[7]]);
    if declared as usize > len - 8 || declared == 0 {
        fixes.push((4, riff_size));
    }
    let mut pos = 12;
    while pos + 8 <= len {
        let id = [wav[pos], wav[pos + 1], wav[pos + 2], wav[pos + 3]];
        let size = u32::from_le_bytes([wav[pos + 4], wav[pos + 5], wav[pos + 6], wav[pos + 7]]);
        let body = pos + 8;
        let available = len - body;
        if &id == b"data" {
            if size as usize > available || size == 0 {
                fixes.push((pos + 4, u32::try_from(available).unwrap_or(u32::MAX)));
            }
            return fixes;
        }
        // Chunks are padded to an even length.
        pos = body
            .saturating_add(size as usize)
            .saturating_add(size as usize & 1);
    }
    fixes
}

/// The WAVE format tag from the `fmt ` chunk (1 = PCM, 0x31 = GSM, ...), if there is one.
pub(crate) fn wav_format_tag(wav: &[u8]) -> Option<u16> {
    let mut pos = 12;
    while pos + 10 <= wav.len() {
        let size = u32::from_le_bytes([wav[pos + 4], wav[pos + 5], wav[pos + 6], wav[pos + 7]]);
        if &wav[pos..pos + 4] == b"fmt " {
            return Some(u16::from_le_bytes([wav[pos + 8], wav[pos + 9]]));
        }
        pos = (pos + 8)
            .saturating_add(size as usize)
            .saturating_add(size as usize & 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint() -> Hint<'static> {
        Hint::default()
    }

    #[test]
    fn mpeg_frame_lengths() {
        // MPEG 1 layer 3, 128 kbps, 44.1 kHz, no padding: 417 bytes.
        let f = mpeg_frame(&[0xff, 0xfb, 0x90, 0x00]).unwrap();
        assert_eq!((f.layer, f.sample_rate, f.len), (3, 44_100, 417));
        // MPEG 2.5 layer 3, 64 kbps, 8 kHz: 72 * 64000 / 8000 = 576 bytes.
        let f = mpeg_frame(&[0xff, 0xe3, 0x88, 0x00]).unwrap();
        assert_eq!((f.layer, f.sample_rate, f.len), (3, 8_000, 576));
        // Free format and reserved sample rate are refused.
        assert!(mpeg_frame(&[0xff, 0xfb, 0x00, 0x00]).is_none());
        assert!(mpeg_frame(&[0xff, 0xfb, 0x9c, 0x00]).is_none());
    }

    #[test]
    fn id3_is_skipped() {
        let mut data = b"ID3\x04\x00\x00\x00\x00\x00\x05abcde".to_vec();
        data.extend_from_slice(b"fLaC\0\0\0\0");
        let found = sniff(&data, &hint()).unwrap();
        assert_eq!(found.container, Container::Flac);
        assert_eq!(found.start, 15);
    }

    #[test]
    fn known_non_audio_is_named() {
        let err = sniff(b"%PDF-1.7 ...", &hint()).unwrap_err();
        assert!(
            matches!(&err, AudioError::NotAudio(m) if m.contains("PDF")),
            "{err}"
        );
        let err = sniff(b"  <!DOCTYPE html><html>", &hint()).unwrap_err();
        assert!(
            matches!(&err, AudioError::NotAudio(m) if m.contains("HTML")),
            "{err}"
        );
        let err = sniff(b"#!AMR\n\x3c", &hint()).unwrap_err();
        assert!(
            matches!(&err, AudioError::Unsupported(m) if m.contains("AMR")),
            "{err}"
        );
    }

    #[test]
    fn wav_sizes_are_repaired() {
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&1000u32.to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&[0; 16]);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&u32::MAX.to_le_bytes());
        wav.extend_from_slice(&[0; 10]);
        repair_wav_sizes(&mut wav);
        assert_eq!(&wav[4..8], &(wav.len() as u32 - 8).to_le_bytes());
        assert_eq!(&wav[40..44], &10u32.to_le_bytes());
    }
}
